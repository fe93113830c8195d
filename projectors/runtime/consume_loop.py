"""What every live projector does, whatever it writes to: join the projection's consumer group, start
each assigned partition from the offset stored with the read model, hand batches to `apply_batch`,
and record progress past the transaction markers that follow the last event, so a caught-up
projection shows no lag.

A batch that fails for a server's sake (failures.py) is retried until it lands, so the position never
moves past it. One that fails for a record's sake is applied up to that record, and the partition is
parked there: paused in the consumer, the record sent to the dead-letter topic and kept in
`projection_dead_letters` (dead_letters.py), while the other partitions go on. The partition applies
nothing more, in log order, until an operator's `retry` or `skip`, read from that table every second
while a partition is parked, resumes it at the record or past it. A record the operator has skipped
is passed over whenever it is met again (after a `reset`), not parked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from event_schemas.registry import EVENT_TYPE_HEADER, REGISTRY, EventRegistry
from projectors.runtime import metrics
from projectors.runtime.dead_letters import (
    DeadLetter,
    DeadLetterTopic,
    Decision,
    SkippedRecords,
    carry_out,
    decisions,
    ensure_dead_letters_table,
    park,
    parked_records,
    skipped_records,
)
from projectors.runtime.failures import is_transient, quotes_values, until_done
from projectors.runtime.offsets import store_offset, stored_offsets
from projectors.runtime.poison import Poison, apply_up_to_poison
from projectors.runtime.tracing import apply_spans
from read_models.pool import Pool

log = logging.getLogger(__name__)

# How often a projector with a parked partition looks for the operator's decision.
DECISION_POLL_SECONDS = 1.0


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ProjectionLoop[Any]) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._loop.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._loop.seek_to_stored(assigned)


class Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...


P = TypeVar("P", bound=Named)


class ProjectionLoop(ABC, Generic[P]):
    def __init__(
        self,
        projection: P,
        pool: Pool,
        bootstrap_servers: str,
        registry: EventRegistry,
        group_id: str,
        dead_letters: DeadLetterTopic,
        max_batch: int = 5000,
    ) -> None:
        self.projection = projection
        self.name = projection.name
        self.topic = projection.topic
        self.pool = pool
        self.registry = registry
        self._bootstrap_servers = bootstrap_servers
        self._group_id = group_id
        self._dead_letters = dead_letters
        self._max_batch = max_batch
        self._consumer: AIOKafkaConsumer | None = None
        self._stored: dict[TopicPartition, int] = {}
        self._ends: dict[TopicPartition, int] = {}  # each partition's committed end, as last heard
        self._parked: dict[TopicPartition, int] = {}  # partition -> offset of the record it stops at
        self._skipped = SkippedRecords(self.name, self.topic, set())  # read again at each assignment
        # Partition -> the number of its start (seek_to_stored), for the partitions started and not
        # revoked since: only their records are applied.
        self._started: dict[TopicPartition, int] = {}
        self._starts = 0
        self._next_decision_poll = 0.0

    @abstractmethod
    async def prepare(self) -> None:
        """Create what the read model needs before the first batch (tables, offsets table, index)."""

    @abstractmethod
    async def apply_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord], position: int) -> None:
        """Apply the records and store `position` (or the offset after the last record) as the next one."""

    async def run(self) -> None:
        """Consume until cancelled."""
        await until_done(self.prepare, f"projection {self.name}: preparing the read model")
        await until_done(
            partial(ensure_dead_letters_table, self.pool), f"projection {self.name}: preparing dead letters"
        )
        metrics.PARKED_PARTITIONS.labels(self.name).set(0)
        metrics.DEAD_LETTERS.labels(self.name)  # the series exists (at 0) before the first dead letter
        metrics.RECORDS_SKIPPED.labels(self.name)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self._group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await self._consumer.start()
        try:
            self._consumer.subscribe([self.topic], listener=_SeekToStoredOffsets(self))
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._max_batch)
                # Which start each batch was fetched under, noted before anything awaits.
                started = [
                    (tp, records, self._started[tp]) for tp, records in batches.items() if tp in self._started
                ]
                # Partitions side by side (each in its own transaction), so one's write does not wait
                # for another's (under POST load, command -> visible p99 went from 207 to 113-155 ms).
                await asyncio.gather(*(self._apply(tp, records, start) for tp, records, start in started))
                await self._record_progress_past_markers()
                await self._act_on_decisions()
                self._observe_lag()
        finally:
            await self._consumer.stop()

    async def _apply(self, tp: TopicPartition, records: list[ConsumerRecord], start: int) -> None:
        assert self._consumer is not None
        if self._started.get(tp) != start:  # revoked, or started again, since they were fetched
            return
        position = await self._consumer.position(tp)  # past the markers after the records
        records = self._pass_over_skipped(tp, records)
        if not records:  # the progress past them is recorded with the markers'
            return
        what = f"projection {self.name} on {tp}"
        with apply_spans(self.name, tp, records) as spans:
            try:
                await until_done(partial(self.apply_batch, tp, records, position), what, is_transient)
            except Exception:  # permanent: a record of the batch cannot be applied
                poison = await apply_up_to_poison(partial(self._apply_exactly, tp), records)
                if poison is None:  # each part landed on its own
                    self._stored[tp] = records[-1].offset + 1
                else:
                    spans.parked(poison.record.offset, poison.error)
                    await self._park(tp, poison)
                return
            self._count_applied(records)
            self._stored[tp] = max(records[-1].offset + 1, position)

    def _pass_over_skipped(self, tp: TopicPartition, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """`records` without those an operator has skipped: met again after a `reset`, which keeps
        `projection_dead_letters`, they would park again, and parking clears the decision."""
        kept = self._skipped.kept(records)
        if len(kept) < len(records):
            passed = len(records) - len(kept)
            log.warning(
                "projection %s passes over %d records of %s as an operator skipped them",
                self.name,
                passed,
                tp,
            )
            metrics.RECORDS_SKIPPED.labels(self.name).inc(passed)
        return kept

    async def _apply_exactly(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> None:
        """Apply `records` and store the offset right after them (not the consumer's position, which
        may be past records of the partition that are not applied yet)."""
        what = f"projection {self.name} on {tp}"
        await until_done(partial(self.apply_batch, tp, records, 0), what, is_transient)
        self._count_applied(records)

    def _count_applied(self, records: Sequence[ConsumerRecord]) -> None:
        """Counted from the records' type header once their transaction has committed, so the count is
        of what the read model holds (a batch that a crash repeats is counted by the next process)."""
        metrics.BATCH_RECORDS.labels(self.name).observe(len(records))
        # One labelled increment per event type of the batch, not per record: a replay applies thousands.
        applied = Counter(
            _event_type_label(
                next((value for key, value in record.headers or () if key == EVENT_TYPE_HEADER), b"unknown")
            )
            for record in records
        )
        for event_type, count in applied.items():
            metrics.EVENTS_APPLIED.labels(self.name, event_type.decode(errors="replace")).inc(count)

    async def _park(self, tp: TopicPartition, poison: Poison[ConsumerRecord]) -> None:
        assert self._consumer is not None
        letter = DeadLetter.of(self.name, poison.record, poison.error)
        log.error(
            "projection %s parks %s at offset %d (%s): %s: %s",
            self.name,
            tp,
            letter.offset,
            letter.event_type,
            letter.error_class,
            letter.reason,
            # A bug's traceback helps whoever fixes it; a refused value's text may hold a secret.
            exc_info=None if quotes_values(poison.error) else poison.error,
        )
        self._stored[tp] = letter.offset
        # Kept first, then held: a rebalance meanwhile restarts the partition from the table, so the
        # record must be parked there (nothing of the partition is fetched while this batch lasts).
        published = await until_done(
            partial(park, self.pool, self._dead_letters, letter, poison.record),
            f"projection {self.name}: parking {tp}",
        )
        if published:
            metrics.DEAD_LETTERS.labels(self.name).inc()
        self._hold(tp, letter.offset)

    def _hold(self, tp: TopicPartition, offset: int) -> None:
        """Stop fetching the partition, at `offset` (records fetched past it are dropped)."""
        assert self._consumer is not None
        if tp not in self._consumer.assignment():  # revoked meanwhile: its next owner parks it
            return
        self._consumer.seek(tp, offset)
        self._consumer.pause(tp)
        self._parked[tp] = offset
        metrics.PARKED_PARTITIONS.labels(self.name).set(len(self._parked))

    def _release(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        self._parked.pop(tp, None)
        metrics.PARKED_PARTITIONS.labels(self.name).set(len(self._parked))
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)
            self._consumer.resume(tp)

    async def _act_on_decisions(self) -> None:
        """While a partition is parked, look every second or so for the operator's decision."""
        assert self._consumer is not None
        if not self._parked or time.monotonic() < self._next_decision_poll:
            return
        self._next_decision_poll = time.monotonic() + DECISION_POLL_SECONDS
        parked = {tp.partition: offset for tp, offset in self._parked.items()}
        decided = await until_done(
            partial(self._decisions, parked), f"projection {self.name}: reading the operator's decisions"
        )
        for partition, decision in decided.items():
            tp = TopicPartition(self.topic, partition)
            offset = self._parked.get(tp)
            if offset is None:  # revoked meanwhile: its next owner acts on the decision
                continue
            resume_at = await until_done(
                partial(carry_out, self.pool, self.name, tp, offset, decision),
                f"projection {self.name}: {decision} on {tp}",
            )
            log.warning(
                "projection %s: %s of offset %d on %s, as the operator decided",
                self.name,
                decision,
                offset,
                tp,
            )
            self._stored[tp] = max(self._stored.get(tp, 0), resume_at)
            self._release(tp, resume_at)
        # A paused partition is not fetched, so its end is asked for: its lag keeps growing.
        still_parked = [tp for tp in self._parked if tp in self._consumer.assignment()]
        if still_parked:
            try:
                self._ends.update(await self._consumer.end_offsets(still_parked))
            except KafkaError as error:  # the lag gauge waits for the next poll
                log.warning("projection %s: no end offsets for its parked partitions (%r)", self.name, error)

    async def _decisions(self, parked: dict[int, int]) -> dict[int, Decision]:
        async with self.pool.connection() as conn:
            return await decisions(conn, self.name, self.topic, parked)

    def forget(self, revoked: Sequence[TopicPartition]) -> None:
        """Partitions taken away: their next owner parks them again if need be."""
        for tp in revoked:
            self._started.pop(tp, None)
            self._parked.pop(tp, None)
            self._ends.pop(tp, None)
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(self.name, str(tp.partition))
        metrics.PARKED_PARTITIONS.labels(self.name).set(len(self._parked))

    async def seek_to_stored(self, partitions: Sequence[TopicPartition]) -> None:
        """Start each partition where the read model stands; one still parked there stays parked.

        aiokafka fetches a partition it assigns from the group's start (the earliest offset) at once,
        while this reads the database: records it hands over before the partition is started here
        are dropped (see `run`), or a restarted projector would apply the record it is parked at."""
        assert self._consumer is not None
        offsets, parked, self._skipped = await until_done(
            self._where_to_start, f"projection {self.name}: reading where its partitions stand"
        )
        for tp in partitions:
            self._stored[tp] = offsets.get(tp.partition, 0)
            self._consumer.seek(tp, self._stored[tp])
            if (tp.partition, self._stored[tp]) in parked:
                self._hold(tp, self._stored[tp])
            self._starts += 1
            self._started[tp] = self._starts

    async def _where_to_start(self) -> tuple[dict[int, int], set[tuple[int, int]], SkippedRecords]:
        """Each partition's stored offset, the (partition, offset) of each record still parked, and
        the records the operator has skipped."""
        async with self.pool.connection() as conn:
            offsets = await stored_offsets(conn, self.name, self.topic)
            parked = {
                (record.partition, record.offset)
                for record in await parked_records(conn, self.name, self.topic)
            }
            skipped = await skipped_records(conn, self.name, self.topic)
        return offsets, parked, SkippedRecords(self.name, self.topic, skipped)

    async def _record_progress_past_markers(self) -> None:
        assert self._consumer is not None
        for tp, start in list(self._started.items()):
            # Not started anew meanwhile, nor parked (its position may be past the parked record).
            if self._started.get(tp) != start or tp in self._parked:
                continue
            position = await self._consumer.position(tp)
            if position > self._stored.get(tp, position):
                await until_done(
                    partial(store_offset, self.pool, self.name, tp, position),
                    f"projection {self.name}: recording progress on {tp}",
                )
                self._stored[tp] = position

    def _observe_lag(self) -> None:
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            if tp not in self._started:  # where it stands is not known yet
                continue
            end = None if tp in self._parked else self._consumer.last_stable_offset(tp)
            if end is not None:
                self._ends[tp] = end
            if tp in self._ends and tp in self._stored:
                lag = max(self._ends[tp] - self._stored[tp], 0)
                metrics.LAG.labels(self.name, str(tp.partition)).set(lag)


_KNOWN_EVENT_TYPES = frozenset(cls.event_type.encode() for cls in REGISTRY.classes())


def _event_type_label(header: bytes) -> bytes:
    """A known event type, or "other": a label per header value a topic happens to hold would make
    series without bound."""
    return header if header in _KNOWN_EVENT_TYPES else b"other"
