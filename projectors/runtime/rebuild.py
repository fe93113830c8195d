"""Rebuilding a read model from offset 0 while the live one keeps serving, then switching readers to
the new one atomically.

PostgreSQL: the projection replays into a shadow table with offsets of its own. To switch, one
transaction locks the live projection's offsets (which holds its projector between two batches),
brings the shadow exactly up to them, drops the live table and renames the shadow in its place.

Elasticsearch: the projection replays into a new index; the alias is moved to it in one request, and
the new index is brought up to the end once more (external versions make that catch-up idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import ConsumerRecord, TopicPartition
from elasticsearch import AsyncElasticsearch
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from event_schemas.registry import EventRegistry
from projectors.runtime.offsets import ensure_offset_row, ensure_offsets_table, store_offset, stored_offsets
from projectors.runtime.postgres_runner import apply_records, drop_read_model, ensure_schema
from projectors.runtime.projection import SHADOW_SUFFIX, Projection, shadow_table
from projectors.runtime.replay import apply_side_by_side, end_offsets, read_range
from projectors.runtime.search_runner import DocumentProjection, create_index, index_events
from read_models.changes import ChangeNotice, announce
from read_models.pool import Pool

Progress = Callable[[str], None]


class ReplayMeter:
    """Counts replayed events and reports the rate now and then."""

    def __init__(self, total: int, progress: Progress) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.finished: float | None = None  # when the last event was replayed: the clock stops there
        self._progress = progress
        self._last_report = 0.0

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last_report >= 1 or self.done >= self.total:
            self._last_report = now
            self._progress(f"replayed {self.done}/{self.total} events ({self.rate:,.0f} events/s)")

    def finish(self) -> None:
        """The replay is over. (Its `total` counts transaction markers too, so `done` may never reach it.)"""
        self.finished = time.monotonic()

    @property
    def rate(self) -> float:
        """Events replayed per second, up to the last one (not up to whenever this is read)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return self.done / max(end - self.started, 1e-9)


async def replay_into_tables(
    pool: Pool,
    projection: Projection,
    bootstrap_servers: str,
    registry: EventRegistry,
    progress: Progress,
) -> ReplayMeter:
    """Phase one of a PostgreSQL rebuild: a fresh shadow table, replayed from 0 to the current end."""
    shadow, shadow_name = shadow_table(projection), projection.name + SHADOW_SUFFIX
    await ensure_offsets_table(pool)
    async with pool.connection() as conn, conn.transaction():
        await drop_read_model(conn, shadow, shadow_name)
    await ensure_schema(pool, projection, shadow)
    ends = await end_offsets(bootstrap_servers, projection.topic)
    meter = ReplayMeter(sum(ends.values()), progress)

    async def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        async with pool.connection() as conn, conn.transaction():
            await apply_records(conn, projection, shadow, shadow_name, registry, tp, records)
        meter.add(len(records))

    await apply_side_by_side(read_range(bootstrap_servers, projection.topic, {}, ends), apply)
    meter.finish()
    return meter


async def swap_tables(
    pool: Pool, projection: Projection, bootstrap_servers: str, registry: EventRegistry
) -> None:
    """Phase two: bring the shadow exactly to the live projector's position and put it in its place."""
    live, shadow = projection.table, shadow_table(projection)
    shadow_name = projection.name + SHADOW_SUFFIX
    async with pool.connection() as conn, conn.transaction():
        partitions = range(len(await end_offsets(bootstrap_servers, projection.topic)))
        for partition in partitions:
            await ensure_offset_row(conn, projection.name, TopicPartition(projection.topic, partition))
        # Holds the live projector between two batches until this transaction ends.
        await conn.execute(
            "SELECT partition FROM projection_offsets WHERE projection = %s AND topic = %s FOR UPDATE",
            (projection.name, projection.topic),
        )
        live_offsets = await stored_offsets(conn, projection.name, projection.topic)
        shadow_offsets = await stored_offsets(conn, shadow_name, projection.topic)
        async for tp, records in read_range(
            bootstrap_servers, projection.topic, shadow_offsets, live_offsets
        ):
            await apply_records(conn, projection, shadow, shadow_name, registry, tp, records)
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(live)))
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(shadow), sql.Identifier(live))
        )
        await _rename_indexes(conn, live, shadow)
        # The shadow may have been ahead of a lagging live projector: the live one goes on from there.
        await conn.execute(
            "UPDATE projection_offsets AS live SET next_offset = GREATEST(live.next_offset, shadow.next_offset) "
            "FROM projection_offsets AS shadow WHERE live.projection = %s AND shadow.projection = %s "
            "AND live.topic = shadow.topic AND live.partition = shadow.partition",
            (projection.name, shadow_name),
        )
        await conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (shadow_name,))
        await announce(conn, ChangeNotice(projection.name))  # every row may differ


async def _rename_indexes(conn: AsyncConnection[DictRow], table: str, old_prefix: str) -> None:
    """Indexes keep the shadow's names through a table rename; give them the live table's."""
    cursor = await conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))
    for row in await cursor.fetchall():
        name: str = row["indexname"]
        if name.startswith(old_prefix):
            await conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(name), sql.Identifier(table + name.removeprefix(old_prefix))
                )
            )


async def rebuild_tables(
    pool: Pool, projection: Projection, bootstrap_servers: str, registry: EventRegistry, progress: Progress
) -> ReplayMeter:
    meter = await replay_into_tables(pool, projection, bootstrap_servers, registry, progress)
    await swap_tables(pool, projection, bootstrap_servers, registry)
    progress(f"{projection.name}: readers now use the rebuilt table")
    return meter


async def rebuild_index(
    es: AsyncElasticsearch,
    pool: Pool,
    projection: DocumentProjection,
    bootstrap_servers: str,
    registry: EventRegistry,
    progress: Progress,
) -> ReplayMeter:
    shadow_name = projection.name + SHADOW_SUFFIX
    await ensure_offsets_table(pool)
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (shadow_name,))
    index = await create_index(es, projection, with_alias=False)
    previous = (
        list(await es.indices.get_alias(name=projection.alias))
        if await es.indices.exists_alias(name=projection.alias)
        else []
    )

    async def replay(start: dict[int, int], until: dict[int, int], meter: ReplayMeter | None) -> None:
        async def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
            await index_events(es, projection, index, [registry.from_bytes(r.value) for r in records])
            await store_offset(pool, shadow_name, tp, records[-1].offset + 1)
            if meter is not None:
                meter.add(len(records))

        await apply_side_by_side(read_range(bootstrap_servers, projection.topic, start, until), apply)

    ends = await end_offsets(bootstrap_servers, projection.topic)
    meter = ReplayMeter(sum(ends.values()), progress)
    await replay({}, ends, meter)
    meter.finish()
    await es.indices.refresh(index=index)
    actions: list[dict[str, object]] = [
        {"remove": {"index": old, "alias": projection.alias}} for old in previous
    ]
    actions.append({"add": {"index": index, "alias": projection.alias}})
    await es.indices.update_aliases(actions=actions)
    async with pool.connection() as conn:
        await announce(conn, ChangeNotice(projection.name))
    progress(f"{projection.name}: readers now use index {index}")
    # What reached the old index between the first pass and the swap (idempotent where repeated).
    async with pool.connection() as conn:
        reached = await stored_offsets(conn, shadow_name, projection.topic)
    await replay(reached, await end_offsets(bootstrap_servers, projection.topic), None)
    for old in previous:
        await es.indices.delete(index=old)
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (shadow_name,))
    return meter
