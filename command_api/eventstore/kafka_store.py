"""The event store on Kafka: single writer per partition, fenced transactional appends.

Kafka has no conditional append, so the guarantees come from ownership:
- the instances of a command service share the topic's partitions through one consumer group;
- the owner of a partition first fences every earlier writer (a transactional producer whose id is
  the partition's: `init_transactions` bumps the epoch and aborts a zombie's open transaction), then
  reads the partition to its end (read_committed) before deciding anything for it;
- decisions for one partition run one at a time against that folded state; the decisions queued
  meanwhile are appended together in one transaction with acks=all (group commit), and the state
  moves only after the commit.
So two writers can never both append to one aggregate: a stale one is fenced by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Histogram

from command_api.eventstore.errors import EventStoreUnavailable, NotOwner
from command_api.eventstore.model import (
    AggregateKind,
    CommandContext,
    Committed,
    Decision,
    Loaded,
    PairDecision,
    PartitionedEventStore,
    Position,
)
from command_api.eventstore.partition_state import Outcome, PartitionState, PendingBatch
from command_api.eventstore.partitioning import partition_for_key, partition_of
from command_api.eventstore.routing import Routes, routing_assignor
from command_api.eventstore.transaction_backoff import shorten_concurrent_transactions_backoff
from event_schemas.envelope import Event
from event_schemas.registry import EventRegistry

S = TypeVar("S")
log = logging.getLogger(__name__)

EVENTS_APPENDED = Counter("events_appended_total", "Events committed to Kafka", ["topic", "event_type"])
COMMITTED_BATCH_SIZE = Histogram(
    "event_store_transaction_events",
    "Events per Kafka transaction (group commit)",
    ["topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)


@dataclass
class _Request:
    """One command (or read) waiting for its turn in a partition."""

    decide: Callable[[PendingBatch], Outcome]
    answer: asyncio.Future[Any]

    # The caller may have gone (a cancelled request): its future is then done, and nobody listens.
    def resolve(self, result: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(result)

    def refuse(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


class PartitionWriter:
    """The single writer of one partition while this instance owns it.

    Requests queue up; one worker takes everything queued (up to MAX_BATCH, after a short linger when
    it is already busy), decides each in order against the state plus the decisions before it, and
    appends all their events in one transaction (group commit). Each request is answered after that commit, or fails with the batch.
    """

    MAX_BATCH = 500
    # Under load (more came in while a batch was being committed, but less than a full batch), wait a
    # little for more before the next transaction: fewer, larger transactions cost Kafka and this
    # process less per command. Measured with bench.eventstore_append at 64 in flight, four pairs of
    # runs: 1,821 -> 2,826, 2,519 -> 3,542, 4,095 -> 4,944, 4,812 -> 6,179 commands/s, p50 lower too.
    # A lone command never waits: the first batch of a busy spell starts at once.
    LINGER_SECONDS = 0.003
    LINGER_BELOW = 32

    def __init__(self, store: KafkaEventStore, partition: int) -> None:
        self._store = store
        self.partition = partition
        self.state = PartitionState(partition, store.kinds)
        self._lock = asyncio.Lock()  # held while a batch is decided and committed
        self._queue: deque[_Request] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._fresh = False  # fenced and caught up to the end of the partition
        self._recovery: asyncio.Task[None] | None = None
        self.owned = False

    @property
    def fresh(self) -> bool:
        return self._fresh

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self._store.topic, self.partition)

    def acquire(self) -> asyncio.Task[None]:
        """Take ownership: start fencing earlier writers and catching up, in the background."""
        self.owned = True
        return self._recover_in_background()

    async def release(self) -> None:
        """Give up ownership once the batch in flight (if any) is committed. Queued requests go to the
        new owner. The state stays in memory, so a later re-assignment only reads what was appended since."""
        async with self._lock:
            self.owned = False
            self._fresh = False
            if self._recovery is not None:
                self._recovery.cancel()
                with contextlib.suppress(BaseException):
                    await self._recovery
            await self._drop_producer()
            self._fail_queued(NotOwner(self.partition, self._store.owner_of(self.partition)))

    async def submit(self, decide: Callable[[PendingBatch], Outcome]) -> Any:
        """Queue `decide` for this partition's next batch; answers once that batch is committed."""
        if not self.owned:
            raise NotOwner(self.partition, self._store.owner_of(self.partition))
        request = _Request(decide, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"writer-partition-{self.partition}")
        return await request.answer

    async def _work(self) -> None:
        busy = False
        while self._queue:
            if busy and len(self._queue) < self.LINGER_BELOW:
                await asyncio.sleep(self.LINGER_SECONDS)
            busy = True
            async with self._lock:
                if not self.owned:
                    self._fail_queued(NotOwner(self.partition, self._store.owner_of(self.partition)))
                    return
                try:
                    await self._wait_fresh()
                except EventStoreUnavailable as error:
                    self._fail_queued(error)
                    continue
                requests = [self._queue.popleft() for _ in range(min(len(self._queue), self.MAX_BATCH))]
                await self._decide_and_commit(requests)

    async def _decide_and_commit(self, requests: list[_Request]) -> None:
        batch = PendingBatch(self.state)
        decided: list[tuple[_Request, Outcome]] = []
        for request in requests:
            try:
                decided.append((request, request.decide(batch)))
            except Exception as refusal:  # a domain error belongs to its own request only
                request.refuse(refusal)
        positions: dict[UUID, Position] = {}
        if batch.events:
            try:
                positions = await self.append(batch.events)
            except Exception as error:  # the whole batch failed: every request in it hears so
                for request, _ in decided:
                    request.refuse(error)
                return
        for request, outcome in decided:
            request.resolve(outcome(positions))

    def _fail_queued(self, error: Exception) -> None:
        while self._queue:
            self._queue.popleft().refuse(error)

    async def append(self, events: Sequence[Event]) -> dict[UUID, Position]:
        """One Kafka transaction for all of `events`; answers only after the broker committed it."""
        try:
            return await asyncio.wait_for(self._transact(events), self._store.timeout)
        except Exception as error:
            # The outcome is unknown (the commit may have landed): re-fence and re-read before deciding again.
            self._fresh = False
            await self._drop_producer()
            if isinstance(error, KafkaError | TimeoutError | OSError):
                raise EventStoreUnavailable(f"Kafka did not acknowledge the append: {error!r}") from error
            raise

    async def _transact(self, events: Sequence[Event]) -> dict[UUID, Position]:
        assert self._producer is not None
        registry, topic = self._store.registry, self._store.topic
        # No `async with transaction()`: its abort would wait on a dead broker during cancellation. An
        # unfinished transaction is aborted by the next init_transactions for this id, or by its timeout.
        await self._producer.begin_transaction()
        deliveries = [
            await self._producer.send(
                topic,
                value=registry.to_bytes(event),
                key=event.aggregate_id.encode(),
                partition=self.partition,
                headers=registry.headers(event),
            )
            for event in events
        ]
        await self._producer.commit_transaction()
        COMMITTED_BATCH_SIZE.labels(topic).observe(len(events))
        positions = {}
        for event, delivery in zip(events, deliveries, strict=True):
            position = positions[event.event_id] = Position(topic, self.partition, (await delivery).offset)
            self.state.apply(event, position)
            EVENTS_APPENDED.labels(topic, event.event_type).inc()
        return positions

    def _recover_in_background(self) -> asyncio.Task[None]:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name=f"recover-partition-{self.partition}")
        return self._recovery

    async def _wait_fresh(self) -> None:
        """Wait, at most the command timeout, for the partition to be fenced and caught up. The recovery
        goes on in the background after a timeout, and keeps what it has read so far."""
        if self._fresh:
            return
        recovery = self._recover_in_background()
        try:
            await asyncio.wait_for(asyncio.shield(recovery), self._store.timeout)
        except TimeoutError as error:
            raise EventStoreUnavailable(
                f"partition {self.partition} is still catching up with Kafka"
            ) from error

    async def _recover(self) -> None:
        try:
            await asyncio.wait_for(self._fence_and_catch_up(), self._store.catch_up_timeout)
        except (KafkaError, TimeoutError, OSError) as error:
            await self._drop_producer()
            log.warning("partition %s is not ready: %r", self.partition, error)
            raise EventStoreUnavailable(f"partition {self.partition} is not ready: {error!r}") from error
        self._fresh = True

    async def _fence_and_catch_up(self) -> None:
        await self._drop_producer()
        producer = AIOKafkaProducer(
            bootstrap_servers=self._store.bootstrap_servers,
            transactional_id=f"{self._store.writer_id}-{self.partition}",
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=int(self._store.timeout * 1000),
        )
        self._producer = producer
        await producer.start()
        # An empty transaction waits for InitProducerId, which fences older epochs of this id and
        # completes (aborts) any transaction a previous owner left open.
        await producer.begin_transaction()
        await producer.commit_transaction()
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Fold every committed record from where this state stopped to the end of the partition."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._store.bootstrap_servers,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tp = self.topic_partition
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, self.state.next_offset)
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
                for record in batches.get(tp, []):
                    event = self._store.registry.from_bytes(record.value)
                    self.state.apply(event, Position(tp.topic, tp.partition, record.offset))
            self.state.next_offset = max(self.state.next_offset, end)
        finally:
            await consumer.stop()

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self._store.timeout)


class TopicMissing(KafkaError):  # type: ignore[misc]
    """The context's topic has not been created (`python -m infra.topics`)."""


async def partition_count(bootstrap_servers: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise TopicMissing(f"topic {topic} does not exist; run `python -m infra.topics` first")
    return len(described["partitions"])


class _OwnershipListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, store: KafkaEventStore) -> None:
        self._store = store

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._store.release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._store.take([tp.partition for tp in assigned])


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
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.kinds = list(kinds)
        self.registry = registry
        self.timeout = timeout
        self.catch_up_timeout = max(timeout, 60.0)
        self.writer_id = f"{group}-writer"
        self._group_id = group
        self._instance_url = instance_url
        self._writers: dict[int, PartitionWriter] = {}
        self._routes: dict[int, str] = {}
        self._partitions = 0
        self._membership: AIOKafkaConsumer | None = None
        self._membership_task: asyncio.Task[None] | None = None
        self._assigned = asyncio.Event()
        self._unreachable = asyncio.Event()
        self._recoveries: list[asyncio.Task[None]] = []
        self._creations = 0

    # lifecycle

    async def start(self) -> None:
        """Join the command side's group in the background: while Kafka cannot be reached the service
        is up and every command answers 503."""
        shorten_concurrent_transactions_backoff()
        self._membership_task = asyncio.create_task(
            self._join_and_stay(), name=f"{self._group_id}-membership"
        )

    async def stop(self) -> None:
        if self._membership_task is not None:
            self._membership_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._membership_task
        if self._membership is not None:
            await self._membership.stop()
        await self.release(list(self._writers))

    async def wait_until_ready(self, within: float) -> None:
        """Start-up: wait (bounded) for a first assignment and for its partitions to catch up, so the
        first commands do not meet a 503. Kafka being unreachable ends the wait at once: the service
        then starts and answers 503 until Kafka is back."""

        async def ready() -> None:
            await self._assigned.wait()
            await asyncio.gather(*self._recoveries, return_exceptions=True)

        waiting = [asyncio.create_task(ready()), asyncio.create_task(self._unreachable.wait())]
        done, pending = await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if waiting[0] not in done:
            log.warning("%s: not ready yet; commands answer 503 until it is", self.topic)

    async def _join_and_stay(self) -> None:
        delay = 0.5
        while self._membership is None:
            try:
                await self._join()
            except (KafkaError, OSError) as error:
                log.warning(
                    "%s: cannot reach Kafka yet (%r); retrying in %.1fs", self._group_id, error, delay
                )
                self._unreachable.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        # Keep polling so the group sees us alive; owned partitions are paused, so nothing is fetched.
        while True:
            try:
                await self._membership.getmany(timeout_ms=1_000)
            except KafkaError as error:
                log.warning("command-side group %s: %r", self._group_id, error)
                await asyncio.sleep(1)

    async def _join(self) -> None:
        self._partitions = await partition_count(self.bootstrap_servers, self.topic)
        membership = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self._group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            partition_assignment_strategy=(routing_assignor(self._instance_url, self._on_routes),),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )
        try:
            await membership.start()
        except BaseException:
            await membership.stop()
            raise
        membership.subscribe([self.topic], listener=_OwnershipListener(self))
        self._membership = membership

    # ownership

    def _on_routes(self, routes: Routes) -> None:
        self._routes = dict(routes.get(self.topic, {}))

    def owner_of(self, partition: int) -> str | None:
        return self._routes.get(partition)

    def owned_partitions(self) -> list[int]:
        return sorted(p for p, writer in self._writers.items() if writer.owned)

    def ready_partitions(self) -> list[int]:
        return sorted(p for p, writer in self._writers.items() if writer.owned and writer.fresh)

    def routes(self) -> dict[int, str]:
        return dict(self._routes)

    async def take(self, partitions: list[int]) -> None:
        assert self._membership is not None
        self._membership.pause(*[TopicPartition(self.topic, p) for p in partitions])
        for partition in partitions:
            self._writers.setdefault(partition, PartitionWriter(self, partition))
        self._recoveries = [self._writers[p].acquire() for p in partitions]
        self._assigned.set()

    async def release(self, partitions: list[int]) -> None:
        await asyncio.gather(*(self._writers[p].release() for p in partitions if p in self._writers))

    def _writer_for(self, kind: AggregateKind[Any], aggregate_id: str) -> PartitionWriter:
        return self._writer_in(partition_of(kind, aggregate_id, self._connected_partitions()))

    def _connected_partitions(self) -> int:
        if not self._partitions:
            raise EventStoreUnavailable(f"not connected to Kafka yet ({self.topic})")
        return self._partitions

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

        result: Loaded[S] = await writer.submit(committed_state)
        return result

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
            lambda batch: batch.decide(kind, aggregate_id, decide, context, expected_version)
        )
        return committed

    async def create(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Committed:
        writer = self._writer_in(self._partition_for_creation(context.idempotency_key))
        committed: Committed = await writer.submit(lambda batch: batch.decide_new(kind, decide, context))
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
            lambda batch: batch.decide_beside(anchor, anchor_id, kind, decide, context)
        )
        return committed
