"""Where each projection has got to in each partition, kept in the read model's own database.

A partition's row is also its projector's lock: a batch is written while its transaction holds the
row, and a rebuild's swap holds every row, so the two never overlap (rebuild.py)."""

from __future__ import annotations

from aiokafka import TopicPartition
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from read_models.pool import Pool

OFFSETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_offsets (
    projection  text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
)
"""


async def create_offsets_table(conn: AsyncConnection[DictRow]) -> None:
    """Inside the caller's transaction, which then holds the schema lock: CREATE IF NOT EXISTS races
    on the catalog when several processes run it at once, so DDL goes one at a time."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('projection-schema'))")
    await conn.execute(OFFSETS_SCHEMA)


async def ensure_offsets_table(pool: Pool) -> None:
    async with pool.connection() as conn, conn.transaction():
        await create_offsets_table(conn)


async def stored_offsets(conn: AsyncConnection[DictRow], offsets_name: str, topic: str) -> dict[int, int]:
    cursor = await conn.execute(
        "SELECT partition, next_offset FROM projection_offsets WHERE projection = %s AND topic = %s",
        (offsets_name, topic),
    )
    return {row["partition"]: row["next_offset"] for row in await cursor.fetchall()}


async def store_offset(pool: Pool, offsets_name: str, tp: TopicPartition, next_offset: int) -> None:
    """Move a partition's stored offset forward (never back)."""
    async with pool.connection() as conn:
        await move_offset(conn, offsets_name, tp, next_offset)


async def move_offset(
    conn: AsyncConnection[DictRow], offsets_name: str, tp: TopicPartition, next_offset: int
) -> None:
    """`store_offset` inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (projection, topic, partition) DO UPDATE "
        "SET next_offset = GREATEST(projection_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
        (offsets_name, tp.topic, tp.partition, next_offset),
    )


async def ensure_offset_row(conn: AsyncConnection[DictRow], offsets_name: str, tp: TopicPartition) -> None:
    """A partition's row exists (at offset 0 if new), so that it can be locked."""
    await conn.execute(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
        "VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
        (offsets_name, tp.topic, tp.partition),
    )


async def hold_offset(conn: AsyncConnection[DictRow], offsets_name: str, tp: TopicPartition) -> int:
    """Lock the partition's row until the caller's transaction ends, and read it (0 if new). The row
    is made only when the lock finds none: a statement less for every batch but a partition's first
    (in a projector's profile, the insert that found its row was 7 % of the samples)."""
    for _ in range(2):
        cursor = await conn.execute(
            "SELECT next_offset FROM projection_offsets "
            "WHERE projection = %s AND topic = %s AND partition = %s FOR UPDATE",
            (offsets_name, tp.topic, tp.partition),
        )
        row = await cursor.fetchone()
        if row is not None:
            next_offset: int = row["next_offset"]
            return next_offset
        await ensure_offset_row(conn, offsets_name, tp)
    raise RuntimeError(f"no offsets row for {offsets_name} {tp} after inserting it")


async def hold_offsets(
    conn: AsyncConnection[DictRow], offsets_name: str, topic: str, partitions: int
) -> dict[int, int]:
    """Lock the rows of all the topic's partitions until the caller's transaction ends, and read them:
    the projector waits between two batches meanwhile, whichever partitions it holds."""
    for partition in range(partitions):
        await ensure_offset_row(conn, offsets_name, TopicPartition(topic, partition))
    cursor = await conn.execute(
        "SELECT partition, next_offset FROM projection_offsets "
        "WHERE projection = %s AND topic = %s ORDER BY partition FOR UPDATE",
        (offsets_name, topic),
    )
    return {row["partition"]: row["next_offset"] for row in await cursor.fetchall()}
