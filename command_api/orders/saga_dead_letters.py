"""The order saga's dead letters: steps it could not take, kept so that none is dropped silently.

A step lands here when a command side refuses it for good (a 4xx no compensation answers), when it
stays unavailable past the saga's bounded retries, or when its record cannot be decoded. Its record
(key, value, headers) is kept in `saga_dead_letters` in the orders database, which the saga's expiry
sweep already uses, written before the record's offset may be committed. The order's later
records wait behind it (`waiting_behind`), so that one order's steps never run out of order, while
every other order goes on. The operator decides (`python -m command_api.orders.saga_runner retry` or
`skip`); the running saga instance that owns the partition carries the decision out, then runs the
records that waited behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aiokafka import ConsumerRecord
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from event_schemas.registry import EVENT_TYPE_HEADER
from projectors.runtime.dead_letters import MAX_REASON, storable
from read_models.pool import Pool

Decision = Literal["retry", "skip"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS saga_dead_letters (
    topic          text    NOT NULL,
    partition      integer NOT NULL,
    record_offset  bigint  NOT NULL,
    record_key     bytea,
    record_value   bytea,
    record_headers jsonb   NOT NULL,
    event_type     text    NOT NULL,
    step           text,
    error_class    text    NOT NULL,
    reason         text    NOT NULL,
    waiting_behind boolean NOT NULL DEFAULT false,
    attempts       integer NOT NULL DEFAULT 1,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    decision       text CHECK (decision IN ('retry', 'skip')),
    resolved_at    timestamptz,
    resolution     text,
    PRIMARY KEY (topic, partition, record_offset)
);
CREATE INDEX IF NOT EXISTS saga_dead_letters_open ON saga_dead_letters (topic, partition)
    WHERE resolved_at IS NULL
"""


@dataclass(frozen=True)
class SagaDeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    event_type: str
    step: str | None
    error_class: str
    reason: str
    waiting_behind: bool = False
    attempts: int = 1
    decision: Decision | None = None
    parked_at: datetime | None = None

    @classmethod
    def of(
        cls, record: ConsumerRecord, step: str | None, error: BaseException, *, waiting_behind: bool = False
    ) -> SagaDeadLetter:
        event_type = dict(record.headers).get(EVENT_TYPE_HEADER, b"unknown").decode(errors="replace")
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            tuple((name, bytes(value)) for name, value in record.headers),
            storable(event_type),
            step,
            type(error).__name__,
            storable(str(error) or repr(error))[:MAX_REASON],
            waiting_behind,
        )

    @classmethod
    def of_row(cls, row: DictRow) -> SagaDeadLetter:
        return cls(
            row["topic"],
            row["partition"],
            row["record_offset"],
            None if row["record_key"] is None else bytes(row["record_key"]),
            None if row["record_value"] is None else bytes(row["record_value"]),
            tuple((name, bytes.fromhex(value)) for name, value in row["record_headers"]),
            row["event_type"],
            row["step"],
            row["error_class"],
            row["reason"],
            row["waiting_behind"],
            row["attempts"],
            row["decision"],
            row["parked_at"],
        )

    def as_record(self) -> ConsumerRecord:
        """The record again, as the consumer gave it, for a retry."""
        return ConsumerRecord(
            self.topic,
            self.partition,
            self.offset,
            0,
            0,
            self.key,
            self.value,
            None,
            len(self.key or b""),
            len(self.value or b""),
            list(self.headers),
        )


async def ensure_table(pool: Pool) -> None:
    async with pool.connection() as conn:
        await conn.execute(SCHEMA)


async def park(pool: Pool, letter: SagaDeadLetter) -> None:
    """Keep the step (again: a retried one that failed once more counts an attempt and waits for the
    operator's next decision)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO saga_dead_letters (topic, partition, record_offset, record_key, record_value,"
            " record_headers, event_type, step, error_class, reason, waiting_behind)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (topic, partition, record_offset) DO UPDATE SET attempts ="
            " saga_dead_letters.attempts + 1, error_class = EXCLUDED.error_class, reason = EXCLUDED.reason,"
            " waiting_behind = EXCLUDED.waiting_behind, parked_at = now(), decision = NULL,"
            " resolved_at = NULL, resolution = NULL",
            (
                letter.topic,
                letter.partition,
                letter.offset,
                letter.key,
                letter.value,
                Jsonb([[name, value.hex()] for name, value in letter.headers]),
                letter.event_type,
                letter.step,
                letter.error_class,
                letter.reason,
                letter.waiting_behind,
            ),
        )


async def open_letters(
    conn: AsyncConnection[DictRow], topics: Sequence[str], partitions: Sequence[int] | None = None
) -> list[SagaDeadLetter]:
    """Every unresolved letter of these topics (and partitions), oldest first."""
    cursor = await conn.execute(
        "SELECT * FROM saga_dead_letters WHERE resolved_at IS NULL AND topic = ANY(%s)"
        " AND (%s::integer[] IS NULL OR partition = ANY(%s)) ORDER BY topic, partition, record_offset",
        (
            list(topics),
            None if partitions is None else list(partitions),
            None if partitions is None else list(partitions),
        ),
    )
    return [SagaDeadLetter.of_row(row) for row in await cursor.fetchall()]


async def resolve(pool: Pool, letter: SagaDeadLetter, resolution: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE saga_dead_letters SET resolved_at = now(), resolution = %s"
            " WHERE topic = %s AND partition = %s AND record_offset = %s",
            (resolution, letter.topic, letter.partition, letter.offset),
        )


async def decide(
    pool: Pool, decision: Decision, topic: str | None, partition: int | None, offset: int | None
) -> int:
    """The operator's decision on the open letters named (every open one, if none is named), except
    those waiting behind another: they run once the one they wait for is resolved. Returns how many
    letters it reached."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE saga_dead_letters SET decision = %s WHERE resolved_at IS NULL AND NOT waiting_behind"
            " AND (%s::text IS NULL OR topic = %s) AND (%s::integer IS NULL OR partition = %s)"
            " AND (%s::bigint IS NULL OR record_offset = %s)",
            (decision, topic, topic, partition, partition, offset, offset),
        )
        return cursor.rowcount


async def counts(pool: Pool) -> dict[str, int]:
    """How many letters are open, and how many of those wait for the operator (not behind another)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS open, count(*) FILTER (WHERE NOT waiting_behind) AS heads"
            " FROM saga_dead_letters WHERE resolved_at IS NULL"
        )
        row = await cursor.fetchone()
    assert row is not None
    return {"open": row["open"], "heads": row["heads"]}
