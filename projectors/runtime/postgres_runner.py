"""The consume loop of a PostgreSQL projection.

Each batch of one partition is applied in one transaction together with the partition's next offset,
and the consumer seeks to that stored offset whenever it is given the partition. A crash may repeat a
batch, never double-apply or skip one: records below the stored offset are skipped under a row lock,
which also holds off a zombie instance during a rebalance.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from aiokafka import ConsumerRecord, TopicPartition
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from event_schemas.registry import EventRegistry
from projectors.runtime.consume_loop import ProjectionLoop
from projectors.runtime.offsets import create_offsets_table, hold_offset
from projectors.runtime.projection import Projection, Row, select_rows, staging_statements, upsert_row
from read_models.changes import ChangeNotice, announce
from read_models.pool import Pool


async def ensure_schema(pool: Pool, projection: Projection, table: str | None = None) -> None:
    async with pool.connection() as conn, conn.transaction():
        await create_offsets_table(conn)
        for ddl in projection.schema(table or projection.table):
            await conn.execute(ddl)


async def drop_read_model(conn: AsyncConnection[DictRow], table: str, offsets_name: str) -> None:
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    await conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (offsets_name,))


async def reset(pool: Pool, projection: Projection) -> None:
    """Drop the read model and its offsets, so the next run replays the topic from the start."""
    async with pool.connection() as conn, conn.transaction():
        await create_offsets_table(conn)
        await drop_read_model(conn, projection.table, projection.name)
        await announce(conn, ChangeNotice(projection.name, reset=True))
    await ensure_schema(pool, projection)


async def apply_records(
    conn: AsyncConnection[DictRow],
    projection: Projection,
    table: str,
    offsets_name: str,
    registry: EventRegistry,
    tp: TopicPartition,
    records: Sequence[ConsumerRecord],
    position: int = 0,
) -> None:
    """Apply one partition's records and move its offset, inside the caller's transaction; records
    below the stored offset are skipped. `position` is the consumer's
    position after the records, which is past any transaction markers that follow them (so a caught-up
    projection shows no lag)."""
    stored = await hold_offset(conn, offsets_name, tp)
    fresh = [record for record in records if record.offset >= stored]
    if not fresh:
        return
    events = [registry.from_bytes(record.value) for record in fresh]
    columns = tuple(projection.columns)
    current: dict[Hashable, Row] = {}
    needed = projection.needs_current(events)
    if needed:
        cursor = await conn.execute(select_rows(table, columns), (list(needed),))
        current = {row[columns[0]]: dict(row) for row in await cursor.fetchall()}
    rows = projection.fold(current, events)
    await write_rows(conn, table, columns, list(rows.values()))
    next_offset = max(fresh[-1].offset + 1, position)
    await conn.execute(
        "UPDATE projection_offsets SET next_offset = %s, updated_at = now() "
        "WHERE projection = %s AND topic = %s AND partition = %s",
        (next_offset, offsets_name, tp.topic, tp.partition),
    )
    if table == projection.table:  # a rebuild's shadow table has no readers to tell
        notice = ChangeNotice.of_batch(offsets_name, tp.topic, tp.partition, next_offset, rows.keys())
        await announce(conn, notice)


# Past this many rows a batch is written with COPY: a statement per row cost a replay more client CPU
# than decoding its events.
COPY_FROM_ROWS = 64


async def write_rows(
    conn: AsyncConnection[DictRow], table: str, columns: tuple[str, ...], rows: list[Row]
) -> None:
    """Upsert whole rows, each only over an older version of itself."""
    if len(rows) < COPY_FROM_ROWS:
        if rows:
            async with conn.cursor() as writer:
                await writer.executemany(upsert_row(table, columns), rows)
        return
    create, copy, upsert = staging_statements(table, columns)
    await conn.execute(create)
    async with conn.cursor() as writer, writer.copy(copy) as copying:
        for row in rows:
            await copying.write_row([row[column] for column in columns])
    await conn.execute(upsert)


class PostgresProjectionRunner(ProjectionLoop[Projection]):
    """Keeps one PostgreSQL read model current, as a member of the projection's consumer group."""

    async def prepare(self) -> None:
        await ensure_schema(self.pool, self.projection)

    async def apply_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord], position: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await apply_records(
                conn,
                self.projection,
                self.projection.table,
                self.name,
                self.registry,
                tp,
                records,
                position,
            )
