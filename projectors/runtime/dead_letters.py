"""Records a projection cannot apply. Each is published to its topic's dead-letter topic (the original
key, value and headers, plus headers naming the projection, where the record was and why it failed)
and kept in `projection_dead_letters`, beside the projection's offsets, where the operator's `retry`
or `skip` reaches the running projector.

A row is parked until an operator sets its `decision` and the projector, having acted on it, sets
`resolved_at`; a retried record that fails again parks the same row again (`attempts` counts), and
is published only the first time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from event_schemas.registry import EVENT_TYPE_HEADER
from event_schemas.topics import dead_letters
from projectors.runtime.failures import describe
from projectors.runtime.offsets import move_offset
from read_models.changes import ChangeNotice, announce
from read_models.pool import Pool

Decision = Literal["retry", "skip"]

DEAD_LETTERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_dead_letters (
    projection    text    NOT NULL,
    topic         text    NOT NULL,
    partition     integer NOT NULL,
    record_offset bigint  NOT NULL,
    event_type    text    NOT NULL,
    error_class   text    NOT NULL,
    reason        text    NOT NULL,
    attempts      integer NOT NULL DEFAULT 1,
    parked_at     timestamptz NOT NULL DEFAULT now(),
    decision      text CHECK (decision IN ('retry', 'skip')),
    resolved_at   timestamptz,
    PRIMARY KEY (projection, topic, partition, record_offset)
)
"""

HEADER_PREFIX = "dead_letter."
# A reason is for a person to read; a validation error can quote a whole event.
MAX_REASON = 1000


def storable(text: str) -> str:
    """`text` as PostgreSQL text can hold it: the NUL byte that may have poisoned the record (and is
    quoted in its error) is written out."""
    return text.replace("\x00", "\\x00")


@dataclass(frozen=True)
class DeadLetter:
    """A record a projection could not apply, and why."""

    projection: str
    topic: str
    partition: int
    offset: int
    event_type: str
    error_class: str
    reason: str

    @classmethod
    def of(cls, projection: str, record: ConsumerRecord, error: Exception) -> DeadLetter:
        event_type = dict(record.headers).get(EVENT_TYPE_HEADER, b"unknown").decode(errors="replace")
        return cls(
            projection,
            record.topic,
            record.partition,
            record.offset,
            storable(event_type),
            type(error).__name__,
            storable(describe(error))[:MAX_REASON],
        )

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def headers(self) -> list[tuple[str, bytes]]:
        fields = {
            "projection": self.projection,
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "error": self.error_class,
            "reason": self.reason,
        }
        return [(HEADER_PREFIX + name, value.encode()) for name, value in fields.items()]


@dataclass(frozen=True)
class Parked:
    """A row of `projection_dead_letters` not yet resolved: its partition stops at `offset`."""

    partition: int
    offset: int
    event_type: str
    error_class: str
    reason: str
    attempts: int
    parked_at: datetime
    decision: Decision | None

    @classmethod
    def of_row(cls, row: DictRow) -> Parked:
        return cls(
            row["partition"],
            row["record_offset"],
            row["event_type"],
            row["error_class"],
            row["reason"],
            row["attempts"],
            row["parked_at"],
            cast(Decision | None, row["decision"]),
        )


async def create_dead_letters_table(conn: AsyncConnection[DictRow]) -> None:
    """Under the same schema lock as the offsets table (see offsets.create_offsets_table)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('projection-schema'))")
    await conn.execute(DEAD_LETTERS_SCHEMA)


async def ensure_dead_letters_table(pool: Pool) -> None:
    async with pool.connection() as conn, conn.transaction():
        await create_dead_letters_table(conn)


class DeadLetterTopic:
    """Publishes dead letters, through the process's one dead-letter producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, letter: DeadLetter, record: ConsumerRecord) -> None:
        await self._producer.send_and_wait(
            dead_letters(record.topic),
            record.value,
            key=record.key,
            headers=[*record.headers, *letter.headers()],
        )


@asynccontextmanager
async def dead_letter_topic(bootstrap_servers: str) -> AsyncIterator[DeadLetterTopic]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield DeadLetterTopic(producer)
    finally:
        await producer.stop()


async def park(pool: Pool, topic: DeadLetterTopic, letter: DeadLetter, record: ConsumerRecord) -> bool:
    """Keep `letter` parked, publishing it first if its record was never parked before (published
    before it is kept: a crash in between publishes it twice rather than never). True if published."""
    key = (letter.projection, letter.topic, letter.partition, letter.offset)
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM projection_dead_letters "
            "WHERE projection = %s AND topic = %s AND partition = %s AND record_offset = %s",
            key,
        )
        known = await cursor.fetchone() is not None
    if not known:
        await topic.publish(letter, record)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO projection_dead_letters "
            "(projection, topic, partition, record_offset, event_type, error_class, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (projection, topic, partition, record_offset) DO UPDATE SET "
            "error_class = EXCLUDED.error_class, reason = EXCLUDED.reason, parked_at = now(), "
            "attempts = projection_dead_letters.attempts + 1, resolved_at = NULL, "
            # A decision the projector has not yet acted on still stands; a retry that failed is over.
            "decision = CASE WHEN projection_dead_letters.resolved_at IS NULL "
            "THEN projection_dead_letters.decision END",
            (*key, letter.event_type, letter.error_class, letter.reason),
        )
        # The partition stands at the record: every record before it is applied, but its stored
        # offset may still name what lies between (a transaction's commit marker), and a restarted
        # projector keeps a partition parked only where its stored offset is the record's.
        await move_offset(conn, letter.projection, letter.tp, letter.offset)
    return not known


async def parked_records(conn: AsyncConnection[DictRow], projection: str, topic: str) -> list[Parked]:
    cursor = await conn.execute(
        "SELECT * FROM projection_dead_letters WHERE projection = %s AND topic = %s AND resolved_at IS NULL "
        "ORDER BY partition, record_offset",
        (projection, topic),
    )
    return [Parked.of_row(row) for row in await cursor.fetchall()]


async def skipped_records(
    conn: AsyncConnection[DictRow], projection: str, topic: str
) -> set[tuple[int, int]]:
    """The (partition, offset) of every record the operator has decided to skip (whether or not the
    projector has acted on it yet): the read model lacks them, so a rebuild passes over them too."""
    cursor = await conn.execute(
        "SELECT partition, record_offset FROM projection_dead_letters "
        "WHERE projection = %s AND topic = %s AND decision = 'skip'",
        (projection, topic),
    )
    return {(row["partition"], row["record_offset"]) for row in await cursor.fetchall()}


async def decisions(
    conn: AsyncConnection[DictRow], projection: str, topic: str, parked: Mapping[int, int]
) -> dict[int, Decision]:
    """The operator's decisions about the records the partitions (partition -> offset) are parked at."""
    found = await parked_records(conn, projection, topic)
    return {
        record.partition: record.decision
        for record in found
        if record.decision is not None and parked.get(record.partition) == record.offset
    }


async def request(
    conn: AsyncConnection[DictRow], projection: str, topic: str, partition: int, decision: Decision
) -> list[Parked]:
    """The operator's command: the records of the partition still parked, now with `decision`."""
    cursor = await conn.execute(
        "UPDATE projection_dead_letters SET decision = %s "
        "WHERE projection = %s AND topic = %s AND partition = %s AND resolved_at IS NULL RETURNING *",
        (decision, projection, topic, partition),
    )
    return [Parked.of_row(row) for row in await cursor.fetchall()]


async def carry_out(pool: Pool, projection: str, tp: TopicPartition, offset: int, decision: Decision) -> int:
    """Resolve the record parked at `offset` as decided, and return the offset its partition resumes
    at: the record itself for a retry; the next one for a skip, which moves the stored offset past it
    (the read model will lack that event) in the same transaction, and tells the query sides."""
    resume_at = offset + 1 if decision == "skip" else offset
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE projection_dead_letters SET resolved_at = now() "
            "WHERE projection = %s AND topic = %s AND partition = %s AND record_offset = %s",
            (projection, tp.topic, tp.partition, offset),
        )
        if decision == "skip":
            await move_offset(conn, projection, tp, resume_at)
            await announce(conn, ChangeNotice.of_batch(projection, tp.topic, tp.partition, resume_at, ()))
    return resume_at


class StoppedAtParkedRecord(Exception):
    """A replay met a record the live projector holds parked, with no `skip` decided: the live read
    model lacks it, so the copy must too, and only the operator can say whether it ever will."""

    def __init__(self, projection: str, topic: str, record: Parked) -> None:
        super().__init__(projection, topic, record)
        self.projection, self.topic, self.record = projection, topic, record

    def __str__(self) -> str:
        name, partition = self.projection, self.record.partition
        return (
            f"{name}: stopped at {self.topic} partition {partition} offset {self.record.offset} "
            f"({self.record.event_type}: {self.record.error_class}), which its projector holds parked; "
            f"`python -m projectors skip {name} {partition}` to go on past it (the read model will lack "
            f"that event), or remove its cause and `python -m projectors retry {name} {partition}`, "
            "then rebuild again"
        )


class SkippedRecords:
    """The records of a projection's topic an operator has skipped (`python -m projectors skip`), as
    `projection_dead_letters` records them, and those of them a projector or a replay has passed
    over. A replay also stops at the records still parked and not skipped."""

    def __init__(
        self,
        projection: str,
        topic: str,
        at: set[tuple[int, int]],
        parked: Mapping[tuple[int, int], Parked] | None = None,
    ) -> None:
        self._projection, self._topic = projection, topic
        self._at = frozenset(at)  # (partition, offset)
        self._parked = dict(parked or {})  # (partition, offset) -> the record parked there
        self._passed: set[tuple[int, int]] = set()  # a set: a rebuild's swap may read a record again

    @classmethod
    async def of(
        cls, pool: Pool, projection: str, topic: str, *, stop_at_parked: bool = False
    ) -> SkippedRecords:
        await ensure_dead_letters_table(pool)
        async with pool.connection() as conn:
            skipped = await skipped_records(conn, projection, topic)
            parked = await parked_records(conn, projection, topic) if stop_at_parked else []
        return cls(
            projection,
            topic,
            skipped,
            {(record.partition, record.offset): record for record in parked if record.decision != "skip"},
        )

    def kept(self, records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
        """`records` without the skipped ones; raises StoppedAtParkedRecord if one is parked."""
        if not self._at and not self._parked:  # as in most batches: no look-up per record
            return list(records)
        kept: list[ConsumerRecord] = []
        for record in records:
            at = (record.partition, record.offset)
            if at in self._parked:
                raise StoppedAtParkedRecord(self._projection, self._topic, self._parked[at])
            if at in self._at:
                self._passed.add(at)
            else:
                kept.append(record)
        return kept

    def report(self) -> str:
        positions = ", ".join(f"{partition}:{offset}" for partition, offset in sorted(self._passed))
        return f"records passed over as an operator skipped them: {len(self._passed)}" + (
            f" (partition:offset {positions})" if positions else ""
        )
