"""The consume loop of a PostgreSQL projection.

Each batch of one partition is applied in one transaction together with the partition's next offset,
and the consumer seeks to that stored offset whenever it is given the partition. A crash may repeat a
batch, never double-apply or skip one: records below the stored offset are skipped under a row lock,
which also holds off a zombie instance during a rebalance.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from event_schemas.registry import EventRegistry
from projectors.runtime.consume_loop import ProjectionLoop
from projectors.runtime.pool import Pool
from projectors.runtime.projection import OFFSETS_SCHEMA, Projection, Tables, live_tables


async def ensure_offsets_table(pool: Pool) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('projection-schema'))")
        await conn.execute(OFFSETS_SCHEMA)


async def ensure_schema(pool: Pool, projection: Projection, tables: Tables | None = None) -> None:
    async with pool.connection() as conn, conn.transaction():
        # One DDL at a time across processes: CREATE IF NOT EXISTS races on the catalog otherwise.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('projection-schema'))")
        await conn.execute(OFFSETS_SCHEMA)
        for ddl in projection.schema(tables or live_tables(projection)):
            await conn.execute(ddl)


async def drop_read_model(conn: AsyncConnection[DictRow], tables: Tables, offsets_name: str) -> None:
    for physical in tables.values():
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(physical)))
    await conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (offsets_name,))


async def reset(pool: Pool, projection: Projection) -> None:
    """Drop the read model and its offsets, so the next run replays the topic from the start."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(OFFSETS_SCHEMA)
        await drop_read_model(conn, live_tables(projection), projection.name)
    await ensure_schema(pool, projection)


async def stored_offsets(conn: AsyncConnection[DictRow], offsets_name: str, topic: str) -> dict[int, int]:
    cursor = await conn.execute(
        "SELECT partition, next_offset FROM projection_offsets WHERE projection = %s AND topic = %s",
        (offsets_name, topic),
    )
    return {row["partition"]: row["next_offset"] for row in await cursor.fetchall()}


async def apply_records(
    conn: AsyncConnection[DictRow],
    projection: Projection,
    tables: Tables,
    offsets_name: str,
    registry: EventRegistry,
    tp: TopicPartition,
    records: Sequence[ConsumerRecord],
    position: int = 0,
) -> int:
    """Apply one partition's records and move its offset, inside the caller's transaction; records
    below the stored offset are skipped. Returns how many were applied. `position` is the consumer's
    position after the records, which is past any transaction markers that follow them (so a caught-up
    projection shows no lag)."""
    await conn.execute(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
        "VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
        (offsets_name, tp.topic, tp.partition),
    )
    cursor = await conn.execute(
        "SELECT next_offset FROM projection_offsets "
        "WHERE projection = %s AND topic = %s AND partition = %s FOR UPDATE",
        (offsets_name, tp.topic, tp.partition),
    )
    row = await cursor.fetchone()
    assert row is not None
    fresh = [record for record in records if record.offset >= row["next_offset"]]
    if not fresh:
        return 0
    statements = [
        statement
        for record in fresh
        for statement in projection.statements(registry.from_bytes(record.value), tables)
    ]
    async with conn.cursor() as cursor:
        # Consecutive statements of one shape go in one executemany (pipelined by psycopg).
        for query, group in groupby(statements, key=lambda statement: statement[0]):
            params: list[Any] = [p for _, p in group]
            if len(params) == 1:
                await cursor.execute(query, params[0])
            else:
                await cursor.executemany(query, params)
    await conn.execute(
        "UPDATE projection_offsets SET next_offset = %s, updated_at = now() "
        "WHERE projection = %s AND topic = %s AND partition = %s",
        (max(fresh[-1].offset + 1, position), offsets_name, tp.topic, tp.partition),
    )
    return len(fresh)


class PostgresProjectionRunner(ProjectionLoop):
    """Keeps one PostgreSQL read model current, as a member of the projection's consumer group."""

    def __init__(
        self,
        projection: Projection,
        pool: Pool,
        bootstrap_servers: str,
        registry: EventRegistry,
        group_id: str,
        max_batch: int = 5000,
    ) -> None:
        super().__init__(
            name=projection.name,
            topic=projection.topic,
            pool=pool,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            max_batch=max_batch,
        )
        self.projection = projection
        self._registry = registry

    async def prepare(self) -> None:
        await ensure_schema(self.pool, self.projection)

    async def stored_offsets(self) -> dict[int, int]:
        async with self.pool.connection() as conn:
            return await stored_offsets(conn, self.name, self.topic)

    async def apply_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord], position: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await apply_records(
                conn,
                self.projection,
                live_tables(self.projection),
                self.name,
                self._registry,
                tp,
                records,
                position,
            )
