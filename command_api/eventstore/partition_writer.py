"""The single writer of one partition while this instance owns it: a state machine run by one task.

    RELEASED    not ours: a request is NotOwner (and is forwarded to the owner)
    RECOVERING  fencing every earlier writer, then reading the partition to its end; retried with
                backoff while Kafka is away; requests queue, each waiting at most the command timeout
    READY       deciding the queued requests in batches, one Kafka transaction per batch
    FENCED      another writer has taken the partition over: refuse, and after the group has had time
                to settle who owns it, recover (if the group still says it is ours)
    HALTED      the log holds a record this version cannot read: refuse until a version that can owns it

Only the writer's task moves between states (the group moves RELEASED <-> owned), so the producer,
the folded state and the queue have one user at a time. docs/architecture.md draws the transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from command_api.eventstore.catch_up import CatchUpStalled, NotThisLog, UnreadableRecord, read_to_end
from command_api.eventstore.checkpoints import CheckpointStore
from command_api.eventstore.errors import EventStoreUnavailable, NotOwner
from command_api.eventstore.model import AggregateKind, Committed, Position
from command_api.eventstore.partition_producer import Fenced, PartitionProducer, ProducerSettings
from command_api.eventstore.partition_state import (
    DEFAULT_CACHE_AGGREGATES,
    Outcome,
    PartitionState,
    PendingBatch,
)
from command_api.eventstore.partition_store import PartitionStore
from config.telemetry import TRACER, kafka_trace_headers, recording
from event_schemas.envelope import Event
from event_schemas.registry import EventRegistry

log = logging.getLogger(__name__)

EVENTS_APPENDED = Counter("events_appended_total", "Events committed to Kafka", ["topic", "event_type"])
COMMITTED_BATCH_SIZE = Histogram(
    "event_store_transaction_events",
    "Events per Kafka transaction (group commit)",
    ["topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
TRANSACTION_REQUESTS = Histogram(
    "event_store_transaction_requests",
    "Requests answered per committed Kafka transaction (group commit): appends and ownership proofs",
    ["topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
COMMIT_SECONDS = Histogram(
    "event_store_commit_duration_seconds",
    "From a batch's decisions to its committed transaction, by kind (append or ownership_proof)",
    ["topic", "kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WRITER_STATE = Gauge(
    "event_store_writer_state",
    "1 for the state each partition's writer is in",
    ["topic", "partition", "state"],
)


class WriterState(StrEnum):
    RELEASED = "released"
    RECOVERING = "recovering"
    READY = "ready"
    FENCED = "fenced"
    HALTED = "halted"


@dataclass
class _Request:
    """One command (or read) waiting for its turn in a partition."""

    decide: Callable[[PendingBatch], Outcome]
    answer: asyncio.Future[Any]
    taken: bool = field(default=False)  # in a batch: its outcome is decided by that batch's commit
    # In a traced request: its span, and that span's context as the headers of the events it appends.
    span: Span | None = None
    trace_headers: list[tuple[str, bytes]] | None = None

    # The caller may have gone (timed out, disconnected): its future is then done, and nobody listens.
    def resolve(self, result: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(result)

    def refuse(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


@dataclass(frozen=True)
class WriterSettings:
    bootstrap_servers: str
    producer: ProducerSettings
    registry: EventRegistry
    kinds: Sequence[AggregateKind[Any]]
    # Every request is answered within this, whatever Kafka does.
    timeout: float
    owner_of: Callable[[int], str | None]
    # Where the partition's store lives on this instance's disk (None: in memory).
    state_file: Path | None = None
    cache_aggregates: int = DEFAULT_CACHE_AGGREGATES
    # Where an empty store is restored from, and checkpointed to (None: replay the whole log).
    checkpoints: CheckpointStore | None = None
    checkpoint_every: int = 20_000


class PartitionWriter:
    """Requests queue up; the writer's task takes everything queued (up to MAX_BATCH, after a short
    linger when it is already busy), decides each in order against the state plus the decisions
    before it, and commits them in one transaction (group commit). A batch that appends nothing
    still proves in a transaction that no other writer has fenced this one, so every answer, a read
    or a no-op included, comes from the current owner."""

    MAX_BATCH = 500
    # Under load (more came in while a batch was being committed, but less than a full batch), wait a
    # little for more before the next transaction: fewer, larger transactions cost Kafka and this
    # process less per command. Measured with bench.eventstore_append at 64 in flight, four pairs of
    # runs: 1,821 -> 2,826, 2,519 -> 3,542, 4,095 -> 4,944, 4,812 -> 6,179 commands/s, p50 lower too.
    # A lone command never waits: the first batch of a busy spell starts at once.
    LINGER_SECONDS = 0.003
    LINGER_BELOW = 32
    # What changed is written to the store at least this often (and whenever 256 aggregates have, which
    # bounds a flush's stall): the most a restart reads again from the log. An aggregate changed again
    # before the flush is encoded once.
    FLUSH_SECONDS = 1.0
    # A writer retries recovery this often at most while Kafka is away, so it is back within seconds.
    MAX_RECOVERY_BACKOFF_SECONDS = 2.0
    # How long a fenced writer waits for the group to hand its partition to the instance that fenced
    # it (a session timeout and a rebalance) before it concludes the fencer was a zombie and recovers.
    FENCED_SETTLE_SECONDS = 15.0

    def __init__(self, settings: WriterSettings, partition: TopicPartition) -> None:
        self._settings = settings
        self.partition = partition
        self.folded = self._open_state()
        self.state = WriterState.RELEASED
        self.halted_because: str | None = None
        self._queue: deque[_Request] = deque()
        self._arrived = asyncio.Event()
        self._settled = asyncio.Event()  # READY or HALTED since the last acquire
        self._producer: PartitionProducer | None = None
        self._runner: asyncio.Task[None] | None = None
        self._committing = False
        self._checkpointed_at = self.folded.next_offset  # of the last checkpoint read or written
        self._checkpoint_saving: asyncio.Task[int] | None = None
        self._flushed_at = time.monotonic()
        self._busy = False  # batches follow each other: a short linger gathers more
        self._show_state()

    @property
    def owned(self) -> bool:
        return self.state is not WriterState.RELEASED

    @property
    def ready(self) -> bool:
        return self.state is WriterState.READY

    # ownership, moved by the group

    def acquire(self) -> None:
        """Own the partition: fence and catch up in the background; requests wait meanwhile. A writer
        that still holds it (the group kept it here) goes on as it is, without fencing again."""
        if self.state in (WriterState.READY, WriterState.RECOVERING):
            return
        if self._runner is not None:
            self._runner.cancel()
        self._settled.clear()
        self._enter(WriterState.RECOVERING)
        self._runner = asyncio.create_task(
            self._run(), name=f"writer-{self.partition.topic}-{self.partition.partition}"
        )
        self._runner.add_done_callback(self._observe)

    async def release(self) -> None:
        """Give the partition up once the batch in flight (if any) is committed; queued requests go to
        the new owner. The folded state stays, so owning it again later reads only what came since."""
        runner, self._runner = self._runner, None
        self._enter(WriterState.RELEASED)
        if runner is not None:
            if self._committing:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(runner), self._settings.timeout)
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
        await self._close_producer()
        try:
            self._flush()  # so that a restart resumes from here
        except sqlite3.Error as error:  # the log still has it all: a restart reads a little more
            log.warning("%s: its store was not flushed on release (%r)", self.partition, error)
        self._enter(WriterState.RELEASED)  # a batch that failed meanwhile may have moved it to RECOVERING
        self._refuse_queued(
            NotOwner(self.partition.partition, self._settings.owner_of(self.partition.partition))
        )

    def close(self) -> None:
        """Close the store (the instance is stopping; the writer has been released)."""
        self.folded.store.close()

    async def settled(self) -> None:
        """Wait until the writer is ready (or halted) after taking the partition."""
        await self._settled.wait()

    # requests

    async def submit(self, decide: Callable[[PendingBatch], Outcome], operation: str = "append") -> Any:
        """Queue `decide` for this partition's next batch; answers once that batch is committed, or
        503 once the command timeout has passed.

        In a traced request, a span named `operation` covers the wait and the commit, and the events
        the request appends carry its context as headers. Both are made here, in the request's own
        task, since the batch is committed by the writer's task for many requests (and traces) at once."""
        self._refuse_unless_owned_and_able()
        while self._queue and self._queue[0].answer.done():  # expired while Kafka was away
            self._queue.popleft()
        if not recording():  # tracing off (or this request not sampled): nothing to build
            return await self._queued(_Request(decide, asyncio.get_running_loop().create_future()))
        with TRACER.start_as_current_span(
            operation,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self.partition.topic,
                "messaging.destination.partition.id": str(self.partition.partition),
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            request = _Request(
                decide,
                asyncio.get_running_loop().create_future(),
                span=span,
                trace_headers=kafka_trace_headers(),
            )
            try:
                answer = await self._queued(request)
            except EventStoreUnavailable as unavailable:
                span.set_status(Status(StatusCode.ERROR, str(unavailable)))
                raise
            except Exception as refusal:  # the domain's decision: the store did its part
                span.set_attribute("commerce.refused", type(refusal).__name__)
                raise
            if isinstance(answer, Committed):
                span.set_attribute("messaging.batch.message_count", len(answer.events))
                span.set_attribute("commerce.replayed", answer.replayed)
                if answer.position is not None:
                    span.set_attribute("messaging.kafka.offset", answer.position.offset)
            return answer

    async def _queued(self, request: _Request) -> Any:
        self._queue.append(request)
        self._arrived.set()
        try:
            return await asyncio.wait_for(asyncio.shield(request.answer), self._settings.timeout)
        except TimeoutError:
            request.refuse(EventStoreUnavailable(self._late(request, appending=True)))
            return request.answer.result()

    def _refuse_unless_owned_and_able(self) -> None:
        partition = self.partition.partition
        if self.state is WriterState.RELEASED:
            raise NotOwner(partition, self._settings.owner_of(partition))
        if self.state is WriterState.HALTED:
            raise EventStoreUnavailable(f"partition {partition} is halted: {self.halted_because}")
        if self.state is WriterState.FENCED:
            raise EventStoreUnavailable(f"partition {partition} is moving to another instance; retry")

    def _late(self, request: _Request, *, appending: bool) -> str:
        if request.taken and appending:
            return (
                f"Kafka did not acknowledge within {self._settings.timeout}s; the command may have been "
                "appended: retry with the same Idempotency-Key to learn its outcome"
            )
        return f"partition {self.partition.partition} is {self.state}; nothing was appended"

    # the writer's task

    async def _run(self) -> None:
        while self.owned:
            if self.state is WriterState.RECOVERING:
                await self._recover()
            elif self.state is WriterState.READY:
                await self._serve_next_batch()
            elif self.state is WriterState.FENCED:
                await asyncio.sleep(self.FENCED_SETTLE_SECONDS)
                self._enter(WriterState.RECOVERING)
            else:
                return

    def _observe(self, runner: asyncio.Task[None]) -> None:
        """No writer dies unobserved: a bug halts the partition loudly, and its callers hear 503."""
        if runner is not self._runner or runner.cancelled() or runner.exception() is None:
            return
        error = runner.exception()
        log.error("writer of %s failed", self.partition, exc_info=error)
        self._halt(f"its writer failed: {error!r}")

    async def _recover(self) -> None:
        delay = 0.1
        while self.state is WriterState.RECOVERING:
            self._producer = PartitionProducer(
                self._settings.producer, self.partition, self._settings.registry
            )
            try:
                await asyncio.wait_for(self._producer.fence(), self._settings.timeout)
                await self._restore_if_empty()
                await read_to_end(
                    self._settings.bootstrap_servers,
                    self.partition,
                    self.folded,
                    self._settings.registry,
                    stall_timeout=self._settings.timeout,
                )
                self._flush()
            except NotThisLog as other_log:
                log.warning("%s: %s; its store is emptied and rebuilt", self.partition, other_log)
                await self._close_producer()
                self._reset_state()
                continue
            except UnreadableRecord as unreadable:
                await self._close_producer()
                self._halt(str(unreadable))
                return
            except (KafkaError, OSError, TimeoutError, CatchUpStalled) as error:
                await self._close_producer()
                log.warning("%s is not ready (%r); retrying in %.1fs", self.partition, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.MAX_RECOVERY_BACKOFF_SECONDS)
                continue
            self._enter(WriterState.READY)
            self._settled.set()
            self._checkpoint_if_due()

    async def _serve_next_batch(self) -> None:
        if not self._queue:
            self._busy = False
            self._arrived.clear()
            await self._arrived.wait()
            return
        if self._busy and len(self._queue) < self.LINGER_BELOW:
            await asyncio.sleep(self.LINGER_SECONDS)
        requests: list[_Request] = []
        while self._queue and len(requests) < self.MAX_BATCH:
            request = self._queue.popleft()
            if not request.answer.done():
                request.taken = True
                requests.append(request)
        if requests:
            await self._decide_and_commit(requests)
            self._busy = True

    async def _decide_and_commit(self, requests: list[_Request]) -> None:
        batch = PendingBatch(self.folded)
        decided: list[tuple[_Request, Outcome]] = []
        traced: dict[int, list[tuple[str, bytes]]] = {}  # an event's index in the batch -> trace headers
        for request in requests:
            first = len(batch.events)
            try:
                decided.append((request, request.decide(batch)))
            except Exception as refusal:  # a domain error belongs to its own request only
                request.refuse(refusal)
            if request.trace_headers is not None:
                traced.update(dict.fromkeys(range(first, len(batch.events)), request.trace_headers))
                assert request.span is not None
                request.span.add_event("decided", {"commerce.batch.requests": len(requests)})
        if not decided:
            return
        assert self._producer is not None
        self._committing = True
        started = time.perf_counter()
        try:
            if batch.events:
                positions = await asyncio.wait_for(
                    self._append(self._producer, batch.events, traced), self._settings.timeout
                )
            else:
                await asyncio.wait_for(
                    self._producer.prove_ownership(self.folded.next_offset), self._settings.timeout
                )
                positions = {}
        except Fenced:
            await self._close_producer()
            self._enter(WriterState.FENCED)
            error = EventStoreUnavailable(f"partition {self.partition.partition} was taken over; retry")
            for request, _ in decided:
                request.refuse(error)
            self._refuse_queued(error)
            return
        except Exception as failure:
            # The outcome is unknown (the commit may have landed): fence and read again before deciding.
            await self._close_producer()
            self._enter(WriterState.RECOVERING)
            if not isinstance(failure, KafkaError | TimeoutError | OSError):
                log.exception("appending to %s failed", self.partition)
            for request, _ in decided:
                request.refuse(EventStoreUnavailable(self._late(request, appending=bool(batch.events))))
            return
        finally:
            self._committing = False
        topic = self.partition.topic
        COMMIT_SECONDS.labels(topic, "append" if batch.events else "ownership_proof").observe(
            time.perf_counter() - started
        )
        TRANSACTION_REQUESTS.labels(topic).observe(len(decided))
        for request, outcome in decided:
            request.resolve(outcome(positions))
        if self.folded.flush_due or time.monotonic() - self._flushed_at >= self.FLUSH_SECONDS:
            self._flush()
        self._checkpoint_if_due()

    async def _append(
        self, producer: PartitionProducer, events: Sequence[Event], traced: dict[int, list[tuple[str, bytes]]]
    ) -> dict[UUID, Position]:
        offsets = await producer.append(events, traced)
        topic, partition = self.partition.topic, self.partition.partition
        COMMITTED_BATCH_SIZE.labels(topic).observe(len(events))
        positions = {}
        for event, offset in zip(events, offsets, strict=True):
            position = positions[event.event_id] = Position(topic, partition, offset)
            self.folded.apply(event, position)
            EVENTS_APPENDED.labels(topic, event.event_type).inc()
        return positions

    # the store and its checkpoints

    def _open_state(self) -> PartitionState:
        state = self._state_over(PartitionStore(self._settings.state_file, self._settings.kinds))
        if state.next_offset > 0:
            log.info("%s resumes from its store at offset %d", self.partition, state.next_offset)
        return state

    def _state_over(self, store: PartitionStore) -> PartitionState:
        return PartitionState(
            self.partition.partition, self._settings.kinds, store, self._settings.cache_aggregates
        )

    def _reset_state(self) -> None:
        """Start the partition's state over, empty (its store was folded from another log, or a
        restore failed half-way)."""
        self.folded.store.clear()
        self.folded = self._state_over(self.folded.store)
        self._checkpointed_at = 0

    def _flush(self) -> None:
        self.folded.flush()
        self._flushed_at = time.monotonic()

    async def _restore_if_empty(self) -> None:
        """An empty store (a new owner's, or a new disk) starts from the partition's latest checkpoint,
        if there is one; else the catch-up reads the whole log."""
        checkpoints = self._settings.checkpoints
        store = self.folded.store
        if checkpoints is None or store.path is None or self.folded.next_offset > 0:
            return
        try:
            restored = await asyncio.wait_for(
                checkpoints.restore(self.partition.partition, store), self._settings.timeout * 20
            )
        except Exception as error:  # a checkpoint only saves time: without one, the whole log is read
            log.warning("%s: no checkpoint read (%r); replaying the log", self.partition, error)
            self._reset_state()
            return
        if restored:
            self.folded = self._state_over(store)
            self._checkpointed_at = self.folded.next_offset
            log.info("%s starts from its checkpoint at offset %d", self.partition, self.folded.next_offset)

    def _checkpoint_if_due(self) -> None:
        """Every `checkpoint_every` records, checkpoint the store as it is now (flushed; a copy is
        made in a thread while the writer goes on) in the background; one checkpoint of the partition
        at a time, and a failed one only logs. Losing the partition meanwhile does not stop it: the
        store was folded from committed records only, so it is valid for whoever owns the partition
        next."""
        checkpoints = self._settings.checkpoints
        if (
            checkpoints is None
            or self.folded.store.path is None
            or self.folded.next_offset - self._checkpointed_at < self._settings.checkpoint_every
        ):
            return
        if self._checkpoint_saving is not None and not self._checkpoint_saving.done():
            return
        self._flush()
        self._checkpointed_at = self.folded.next_offset
        self._checkpoint_saving = asyncio.create_task(
            checkpoints.save(self.partition.partition, self.folded.store),
            name=f"checkpoint-{self.partition.topic}-{self.partition.partition}",
        )
        self._checkpoint_saving.add_done_callback(self._checkpoint_saved)

    async def checkpoint(self) -> int | None:
        """Checkpoint now, after any checkpoint in flight; the offset it reaches (None: no checkpoints)."""
        checkpoints = self._settings.checkpoints
        if checkpoints is None or self.folded.store.path is None:
            return None
        if self._checkpoint_saving is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint_saving
        self._flush()
        self._checkpointed_at = self.folded.next_offset
        return await checkpoints.save(self.partition.partition, self.folded.store)

    def _checkpoint_saved(self, saving: asyncio.Task[int]) -> None:
        if saving.cancelled():
            return
        if (error := saving.exception()) is not None:
            log.warning(
                "%s: checkpoint not written (%r); the next one is due as usual", self.partition, error
            )
        else:
            log.info("%s: checkpoint written at offset %d", self.partition, saving.result())

    # states

    def _halt(self, reason: str) -> None:
        self.halted_because = reason
        self._enter(WriterState.HALTED)
        self._settled.set()
        log.error(
            "%s HALTED: %s. Commands for this partition answer 503 until an instance that can read it owns it.",
            self.partition,
            reason,
        )
        self._refuse_queued(
            EventStoreUnavailable(f"partition {self.partition.partition} is halted: {reason}")
        )

    def _enter(self, state: WriterState) -> None:
        self.state = state
        if state is not WriterState.HALTED:
            self.halted_because = None
        self._show_state()

    def _show_state(self) -> None:
        for state in WriterState:
            WRITER_STATE.labels(self.partition.topic, str(self.partition.partition), state.value).set(
                1 if state is self.state else 0
            )

    def _refuse_queued(self, error: Exception) -> None:
        while self._queue:
            self._queue.popleft().refuse(error)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.close()
