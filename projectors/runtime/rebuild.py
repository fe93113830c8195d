"""Rebuilding a read model from offset 0 while the live one keeps serving, then switching readers to
the new one atomically.

Both kinds switch the same way. The projection replays into a shadow table or a new index, with
offsets of its own. Then one PostgreSQL transaction locks the live projector's offset rows (which
holds it between two batches: it writes a batch while holding its partition's row), brings the copy
exactly up to them, puts it in the live one's place (renames the table; moves the alias), and moves
the live offsets to wherever the copy got. When the projector goes on, the read model it writes into
is the fold of exactly the records before its offsets, as if it had written every one of them itself.

Moving the alias first and catching up afterwards is not enough for an index: the live projector
folds each batch into the documents it reads back, and in the new index those would be missing the
events that reached only the old one: an update folds to nothing, or onto an older version of the
document, and its external version then refuses the missing event when the catch-up brings it.

A replay meets again the records the live projector parked (dead_letters.py). Those the operator has
skipped it passes over, so that the copy lacks what the live read model lacks; at one still parked it
stops the rebuild (StoppedAtParkedRecord, before applying anything of its batch), as it stops the
live projector.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

from aiokafka import ConsumerRecord, TopicPartition
from elasticsearch import AsyncElasticsearch
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from event_schemas.registry import EventRegistry
from projectors.runtime.dead_letters import SkippedRecords
from projectors.runtime.offsets import (
    ensure_offsets_table,
    hold_offsets,
    move_offset,
    store_offset,
    stored_offsets,
)
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


async def apply_to_shadow(
    conn: AsyncConnection[DictRow],
    projection: Projection,
    registry: EventRegistry,
    skipped: SkippedRecords,
    tp: TopicPartition,
    records: Sequence[ConsumerRecord],
) -> None:
    """Apply one partition's records to the shadow table, but the skipped ones, and move its offset
    past all of them, inside the caller's transaction."""
    shadow_name, after = projection.name + SHADOW_SUFFIX, records[-1].offset + 1
    kept = skipped.kept(records)
    if kept:
        await apply_records(
            conn, projection, shadow_table(projection), shadow_name, registry, tp, kept, after
        )
    else:
        await move_offset(conn, shadow_name, tp, after)


async def replay_into_tables(
    pool: Pool,
    projection: Projection,
    bootstrap_servers: str,
    registry: EventRegistry,
    skipped: SkippedRecords,
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
            await apply_to_shadow(conn, projection, registry, skipped, tp, records)
        meter.add(len(records))

    await apply_side_by_side(read_range(bootstrap_servers, projection.topic, {}, ends), apply)
    meter.finish()
    return meter


async def swap_tables(
    pool: Pool,
    projection: Projection,
    bootstrap_servers: str,
    registry: EventRegistry,
    skipped: SkippedRecords,
) -> None:
    """Phase two: bring the shadow exactly to the live projector's position and put it in its place."""
    live, shadow = projection.table, shadow_table(projection)
    shadow_name = projection.name + SHADOW_SUFFIX
    async with pool.connection() as conn, conn.transaction():
        partitions = len(await end_offsets(bootstrap_servers, projection.topic))
        # Holds the live projector between two batches until this transaction ends.
        live_offsets = await hold_offsets(conn, projection.name, projection.topic, partitions)
        shadow_offsets = await stored_offsets(conn, shadow_name, projection.topic)
        async for tp, records in read_range(
            bootstrap_servers, projection.topic, shadow_offsets, live_offsets
        ):
            await apply_to_shadow(conn, projection, registry, skipped, tp, records)
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(live)))
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(shadow), sql.Identifier(live))
        )
        await _rename_indexes(conn, live, shadow)
        await hand_over_offsets(conn, projection.name, shadow_name)
        await announce(conn, ChangeNotice(projection.name))  # every row may differ


async def hand_over_offsets(conn: AsyncConnection[DictRow], live_name: str, shadow_name: str) -> None:
    """The copy may be ahead of a lagging live projector: the live one goes on from there (the records
    in between are in the copy already). Inside the swap's transaction."""
    await conn.execute(
        "UPDATE projection_offsets AS live SET next_offset = GREATEST(live.next_offset, shadow.next_offset) "
        "FROM projection_offsets AS shadow WHERE live.projection = %s AND shadow.projection = %s "
        "AND live.topic = shadow.topic AND live.partition = shadow.partition",
        (live_name, shadow_name),
    )
    await conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (shadow_name,))


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
    skipped = await SkippedRecords.of(pool, projection.name, projection.topic, stop_at_parked=True)
    meter = await replay_into_tables(pool, projection, bootstrap_servers, registry, skipped, progress)
    await swap_tables(pool, projection, bootstrap_servers, registry, skipped)
    progress(f"{projection.name}: readers now use the rebuilt table; {skipped.report()}")
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
    skipped = await SkippedRecords.of(pool, projection.name, projection.topic, stop_at_parked=True)
    index = await create_index(es, projection, with_alias=False)
    into_index = IndexReplay(es, pool, projection, index, bootstrap_servers, registry, skipped)
    try:
        ends = await end_offsets(bootstrap_servers, projection.topic)
        meter = ReplayMeter(sum(ends.values()), progress)
        await into_index.replay({}, ends, meter)
        meter.finish()
        # Once more up to the end, without holding the live projector, so that the swap holds it briefly.
        await into_index.replay(
            await into_index.reached(), await end_offsets(bootstrap_servers, projection.topic)
        )
        previous = await swap_index(es, pool, into_index, len(ends))
    except BaseException:
        # Not swapped in: nobody reads the new index, and a later rebuild makes one of its own.
        with contextlib.suppress(Exception):
            await es.indices.delete(index=index)
        raise
    progress(f"{projection.name}: readers now use index {index}; {skipped.report()}")
    for old in previous:  # a live projector's first index may have deleted itself meanwhile
        await es.indices.delete(index=old, ignore_unavailable=True)
    return meter


class IndexReplay:
    """Replaying records of the projection's topic into a new index, with offsets of its own."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        pool: Pool,
        projection: DocumentProjection,
        index: str,
        bootstrap_servers: str,
        registry: EventRegistry,
        skipped: SkippedRecords,
    ) -> None:
        self.es, self.pool, self.projection, self.index = es, pool, projection, index
        self.offsets_name = projection.name + SHADOW_SUFFIX
        self._bootstrap_servers, self._registry, self._skipped = bootstrap_servers, registry, skipped

    async def reached(self) -> dict[int, int]:
        async with self.pool.connection() as conn:
            return await stored_offsets(conn, self.offsets_name, self.projection.topic)

    async def replay(
        self, start: Mapping[int, int], until: Mapping[int, int], meter: ReplayMeter | None = None
    ) -> None:
        async def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
            events = [self._registry.from_bytes(record.value) for record in self._skipped.kept(records)]
            if events:
                await index_events(self.es, self.projection, self.index, events)
            await store_offset(self.pool, self.offsets_name, tp, records[-1].offset + 1)
            if meter is not None:
                meter.add(len(records))

        batches = read_range(self._bootstrap_servers, self.projection.topic, start, until)
        await apply_side_by_side(batches, apply)


async def swap_index(
    es: AsyncElasticsearch, pool: Pool, into_index: IndexReplay, partitions: int
) -> list[str]:
    """Phase two: bring the new index exactly to the live projector's position and move the alias to
    it, while the live projector is held between two batches. Returns the indices the alias named
    until then: read here, not when the rebuild started, since the live projector creates its first
    index whenever it finds no alias, and the alias must end naming the new index alone."""
    projection, index = into_index.projection, into_index.index
    async with pool.connection() as conn, conn.transaction():
        live_offsets = await hold_offsets(conn, projection.name, projection.topic, partitions)
        await into_index.replay(await into_index.reached(), live_offsets)
        await es.indices.refresh(index=index)
        previous = await aliased_indices(es, projection.alias)
        actions: list[dict[str, object]] = [
            {"remove": {"index": old, "alias": projection.alias}} for old in previous
        ]
        actions.append({"add": {"index": index, "alias": projection.alias}})
        await es.indices.update_aliases(actions=actions)  # one request: readers never see two
        # A live projector's first index added since `previous` was read (search_runner.claim_alias):
        # it yields to this one, but may have read the alias before this swap added it.
        stray = [other for other in await aliased_indices(es, projection.alias) if other != index]
        if stray:
            await es.indices.delete(index=",".join(stray), ignore_unavailable=True)
        await hand_over_offsets(conn, projection.name, into_index.offsets_name)
        await announce(conn, ChangeNotice(projection.name))
    return previous


async def aliased_indices(es: AsyncElasticsearch, alias: str) -> list[str]:
    """Every index `alias` names (none if there is no such alias)."""
    if not await es.indices.exists_alias(name=alias):
        return []
    return list(await es.indices.get_alias(name=alias))
