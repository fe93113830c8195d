"""The event store on Kafka: single writer per partition, fenced transactional appends.

Kafka has no conditional append, so the guarantees come from ownership:
- the instances of a command service share the topic's partitions through one consumer group
  (`membership.py`, with the sticky, route-sharing assignor of `routing.py`);
- the owner of a partition first fences every earlier writer (a transactional producer whose id is
  the partition's: `partition_producer.py`), then reads the partition to its end (`catch_up.py`)
  before deciding anything for it, folding into the partition's store on local disk
  (`partition_store.py`), whose checkpoints in Kafka let a new owner start without the whole log
  (`checkpoints.py`);
- decisions for one partition run one at a time against that folded state; the decisions queued
  meanwhile are appended together in one transaction with acks=all (group commit), and the state
  moves only after the commit; a batch that appends nothing proves ownership in a transaction too
  (`partition_writer.py`, whose states docs/architecture.md draws).
So two writers can never both append to one aggregate, nor answer from a state the other has moved on.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import TopicPartition

from command_api.eventstore.checkpoints import CheckpointStore
from command_api.eventstore.errors import EventStoreUnavailable, NotOwner
from command_api.eventstore.membership import GroupMembership
from command_api.eventstore.model import (
    AggregateKind,
    CommandContext,
    Committed,
    Decision,
    Loaded,
    PairDecision,
    PartitionedEventStore,
)
from command_api.eventstore.partition_producer import ProducerSettings
from command_api.eventstore.partition_state import DEFAULT_CACHE_AGGREGATES, Outcome, PendingBatch
from command_api.eventstore.partition_writer import PartitionWriter, WriterSettings
from command_api.eventstore.partitioning import partition_for_key, partition_of
from command_api.eventstore.transaction_backoff import shorten_concurrent_transactions_backoff
from event_schemas.registry import EventRegistry

S = TypeVar("S")
log = logging.getLogger(__name__)


class KafkaEventStore(PartitionedEventStore):
    """One per command-service process; owns the partitions the consumer group gives it."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group: str,
        instance_url: str,
        kinds: Sequence[AggregateKind[Any]],
        registry: EventRegistry,
        timeout: float,
        checkpoint_key: bytes | None = None,
        checkpoint_every: int = 20_000,
        state_dir: Path | None = None,
        cache_aggregates: int = DEFAULT_CACHE_AGGREGATES,
        replication_factor: int = 1,
    ) -> None:
        """`state_dir`: this instance's folder for the partitions' stores (None: in memory, for tests
        and benchmarks that start cold on purpose); `checkpoint_key`: None writes no checkpoints."""
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.kinds = list(kinds)
        self.registry = registry
        self.timeout = timeout
        self.writer_id = f"{group}-writer"
        self._writers: dict[int, PartitionWriter] = {}
        self._membership = GroupMembership(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            group=group,
            instance_url=instance_url,
            on_assigned=self._take_assignment,
            owned=self.owned_partitions,
        )
        self._creations = 0
        self._checkpoint_every = checkpoint_every
        self._checkpoints = (
            None
            if checkpoint_key is None
            else CheckpointStore(
                bootstrap_servers=bootstrap_servers,
                topic=topic,
                replication_factor=replication_factor,
                key=checkpoint_key,
                timeout=timeout,
            )
        )
        self._state_dir = None if state_dir is None else state_dir / topic
        self._cache_aggregates = cache_aggregates
        self._state_lock: int | None = None

    # lifecycle

    async def start(self) -> None:
        """Join the command side's group in the background: while Kafka cannot be reached the service
        is up and every command answers 503."""
        shorten_concurrent_transactions_backoff()
        self._lock_state_dir()
        await self._membership.start()

    async def stop(self) -> None:
        await self._membership.stop()
        await asyncio.gather(*(writer.release() for writer in self._writers.values() if writer.owned))
        for writer in self._writers.values():
            writer.close()
        if self._checkpoints is not None:
            await self._checkpoints.stop()
        if self._state_lock is not None:
            os.close(self._state_lock)
            self._state_lock = None

    def _lock_state_dir(self) -> None:
        """One process per folder: two would fold into the same files from different positions."""
        if self._state_dir is None:
            return
        self._state_dir.mkdir(parents=True, exist_ok=True)
        lock = os.open(self._state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise RuntimeError(f"another process keeps its state in {self._state_dir}") from None
        self._state_lock = lock

    async def checkpoint_all(self) -> None:
        """Checkpoint every ready partition now (benchmarks; an operator before a planned move)."""
        await asyncio.gather(*(writer.checkpoint() for writer in self._writers.values() if writer.ready))

    async def wait_until_ready(self, within: float) -> None:
        """Start-up: wait (bounded) for a first assignment and for its partitions to catch up, so the
        first commands do not meet a 503. Kafka being unreachable ends the wait at once: the service
        then starts and answers 503 until Kafka is back."""

        async def ready() -> None:
            await self._membership.assigned.wait()
            await asyncio.gather(*(writer.settled() for writer in self._writers.values() if writer.owned))

        waiting = [asyncio.create_task(ready()), asyncio.create_task(self._membership.unreachable.wait())]
        done, pending = await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if waiting[0] not in done:
            log.warning("%s: not ready yet; commands answer 503 until it is", self.topic)

    # ownership

    async def _take_assignment(self, assigned: set[int]) -> None:
        """Release what moved away, keep what stayed as it is, and recover what arrived."""
        lost = [writer for p, writer in self._writers.items() if writer.owned and p not in assigned]
        await asyncio.gather(*(writer.release() for writer in lost))
        for partition in sorted(assigned):
            if partition not in self._writers:
                self._writers[partition] = PartitionWriter(
                    self.writer_settings(partition), TopicPartition(self.topic, partition)
                )
            self._writers[partition].acquire()

    def writer_settings(self, partition: int) -> WriterSettings:
        return WriterSettings(
            bootstrap_servers=self.bootstrap_servers,
            producer=ProducerSettings(
                bootstrap_servers=self.bootstrap_servers,
                transactional_id=f"{self.writer_id}-{partition}",
                checkpoint_group=f"{self.writer_id}-positions",
                request_timeout=self.timeout,
                transaction_timeout=max(2 * self.timeout, 10.0),
            ),
            registry=self.registry,
            kinds=self.kinds,
            timeout=self.timeout,
            owner_of=self.owner_of,
            checkpoints=self._checkpoints,
            checkpoint_every=self._checkpoint_every,
            state_file=None
            if self._state_dir is None
            else self._state_dir / f"partition-{partition}.sqlite3",
            cache_aggregates=self._cache_aggregates,
        )

    def owner_of(self, partition: int) -> str | None:
        return self._membership.owner_of(partition)

    def owned_partitions(self) -> list[int]:
        return sorted(p for p, writer in self._writers.items() if writer.owned)

    def ready_partitions(self) -> list[int]:
        return sorted(p for p, writer in self._writers.items() if writer.ready)

    def writer_states(self) -> dict[int, str]:
        """Each owned partition's writer state, and why it is halted if it is (for operators)."""
        return {
            p: writer.state if writer.halted_because is None else f"{writer.state}: {writer.halted_because}"
            for p, writer in sorted(self._writers.items())
            if writer.owned
        }

    def routes(self) -> dict[int, str]:
        return self._membership.routes()

    def _writer_for(self, kind: AggregateKind[Any], aggregate_id: str) -> PartitionWriter:
        return self._writer_in(partition_of(kind, aggregate_id, self._connected_partitions()))

    def _connected_partitions(self) -> int:
        if not self._membership.partitions:
            raise EventStoreUnavailable(f"not connected to Kafka yet ({self.topic})")
        return self._membership.partitions

    def _partition_for_creation(self, idempotency_key: str | None) -> int:
        """A retry must land where the first attempt did, so a keyed creation goes where its key hashes
        to; any other one goes to one of this instance's ready partitions in turn (no forwarding)."""
        partitions = self._connected_partitions()
        if idempotency_key is not None:
            return partition_for_key(idempotency_key.encode(), partitions)
        local = self.ready_partitions() or self.owned_partitions() or list(range(partitions))
        self._creations += 1
        return local[self._creations % len(local)]

    def _writer_in(self, partition: int) -> PartitionWriter:
        writer = self._writers.get(partition)
        if writer is None or not writer.owned:
            raise NotOwner(partition, self.owner_of(partition))
        return writer

    # the port

    async def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        writer = self._writer_for(kind, aggregate_id)

        def committed_state(batch: PendingBatch) -> Outcome:
            loaded = batch.base.load(kind, aggregate_id)
            return lambda _: loaded

        result: Loaded[S] = await writer.submit(committed_state, f"load {kind.name}")
        return result

    async def peek(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        """The ready writer's folded state as it is (its committed batches; not one being committed).
        A writer not ready yet answers through its queue, as `load` does."""
        writer = self._writer_for(kind, aggregate_id)
        if not writer.ready:
            return await self.load(kind, aggregate_id)
        return writer.folded.load(kind, aggregate_id)

    async def decide_in_partition(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        decide: Decision[S],
        context: CommandContext,
        expected_version: int | None,
    ) -> Committed:
        writer = self._writer_for(kind, aggregate_id)
        committed: Committed = await writer.submit(
            lambda batch: batch.decide(kind, aggregate_id, decide, context, expected_version),
            f"append {kind.name}",
        )
        return committed

    async def create(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Committed:
        writer = self._writer_in(self._partition_for_creation(context.idempotency_key))
        committed: Committed = await writer.submit(
            lambda batch: batch.decide_new(kind, decide, context), f"append {kind.name}"
        )
        return committed

    async def create_beside(
        self,
        anchor: AggregateKind[S],
        anchor_id: str,
        kind: AggregateKind[Any],
        decide: PairDecision[S],
        context: CommandContext,
    ) -> Committed:
        writer = self._writer_for(anchor, anchor_id)
        committed: Committed = await writer.submit(
            lambda batch: batch.decide_beside(anchor, anchor_id, kind, decide, context),
            f"append {anchor.name}+{kind.name}",
        )
        return committed


def instance_folder(instance_url: str) -> str:
    """A folder name for an instance, from the URL its peers reach it at."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", instance_url.split("://")[-1]).strip("-") or "instance"
