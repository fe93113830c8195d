"""The consume loop of an Elasticsearch projection.

Elasticsearch writes cannot share a transaction with the offsets, so the order is: read the batch,
write it with external versions (idempotent and order-safe), then store the partition's next offset
in PostgreSQL. A crash between the two repeats the batch, which the external versions turn into
no-ops. Writes go through an alias, so a rebuild can build a new index and swap it in atomically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from elasticsearch import AsyncElasticsearch, BadRequestError

from event_schemas.envelope import Event
from event_schemas.registry import EventRegistry
from projectors.runtime.pool import Pool
from projectors.runtime.postgres_runner import ensure_offsets_table, stored_offsets

log = logging.getLogger(__name__)

Document = dict[str, Any]


class DocumentProjection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...

    @property
    def alias(self) -> str:
        """What readers and the live projector address; it names exactly one index."""
        ...

    @property
    def mapping(self) -> Mapping[str, Any]: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...

    def needs_current(self, events: Sequence[Event]) -> set[str]: ...

    def fold(self, current: Mapping[str, Document], events: Sequence[Event]) -> dict[str, Document]: ...


class IndexWriteFailed(Exception):
    pass


async def create_index(es: AsyncElasticsearch, projection: DocumentProjection, *, with_alias: bool) -> str:
    """A new, empty index for the projection (named after the alias and the time)."""
    index = f"{projection.alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    aliases: dict[str, Any] = {projection.alias: {}} if with_alias else {}
    await es.indices.create(
        index=index, mappings=dict(projection.mapping), settings=dict(projection.settings), aliases=aliases
    )
    return index


async def ensure_index(es: AsyncElasticsearch, projection: DocumentProjection) -> None:
    if await es.indices.exists_alias(name=projection.alias):
        return
    try:
        await create_index(es, projection, with_alias=True)
    except BadRequestError as error:  # another instance created it first
        if not await es.indices.exists_alias(name=projection.alias):
            raise IndexWriteFailed(str(error)) from error


async def index_events(
    es: AsyncElasticsearch, projection: DocumentProjection, target: str, events: Sequence[Event]
) -> int:
    """Fold `events` into the documents of `target` (an index or the alias) and write them; returns how
    many documents were written or were already newer."""
    needed = sorted(projection.needs_current(events))
    current: dict[str, Document] = {}
    if needed:
        found = await es.mget(index=target, ids=needed)
        current = {doc["_id"]: doc["_source"] for doc in found["docs"] if doc.get("found")}
    documents = projection.fold(current, events)
    if not documents:
        return 0
    operations: list[Mapping[str, Any]] = []
    for key, document in documents.items():
        operations.append(
            {
                "index": {
                    "_index": target,
                    "_id": key,
                    "version": document["version"],
                    "version_type": "external",
                }
            }
        )
        operations.append(document)
    response = await es.bulk(operations=operations)
    if response["errors"]:
        failures = [
            item["index"]
            for item in response["items"]
            if item["index"].get("status", 200) >= 300 and item["index"]["status"] != 409
        ]
        if failures:  # 409: the index already holds a newer version, which is what we want
            raise IndexWriteFailed(f"{len(failures)} documents failed, first: {failures[0].get('error')}")
    return len(documents)


async def store_offset(pool: Pool, offsets_name: str, tp: TopicPartition, next_offset: int) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (projection, topic, partition) DO UPDATE "
            "SET next_offset = GREATEST(projection_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
            (offsets_name, tp.topic, tp.partition, next_offset),
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: SearchProjectionRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._runner.seek_to_stored(assigned)


class SearchProjectionRunner:
    """Keeps a search index current, as a member of the projection's consumer group."""

    def __init__(
        self,
        projection: DocumentProjection,
        es: AsyncElasticsearch,
        pool: Pool,
        bootstrap_servers: str,
        registry: EventRegistry,
        group_id: str,
        max_batch: int = 5000,
    ) -> None:
        self.projection = projection
        self._es = es
        self._pool = pool
        self._bootstrap_servers = bootstrap_servers
        self._registry = registry
        self._group_id = group_id
        self._max_batch = max_batch
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        await ensure_offsets_table(self._pool)
        await self._until_done(lambda: ensure_index(self._es, self.projection), "creating the index")
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
            self._consumer.subscribe([self.projection.topic], listener=_SeekToStoredOffsets(self))
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._max_batch)
                for tp, records in batches.items():
                    await self._until_done(
                        lambda tp=tp, records=records: self.process_batch(tp, records), f"{tp}"
                    )
        finally:
            await self._consumer.stop()

    async def seek_to_stored(self, partitions: Sequence[TopicPartition]) -> None:
        assert self._consumer is not None
        async with self._pool.connection() as conn:
            offsets = await stored_offsets(conn, self.projection.name, self.projection.topic)
        for tp in partitions:
            self._consumer.seek(tp, offsets.get(tp.partition, 0))

    async def process_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> None:
        assert self._consumer is not None
        position = await self._consumer.position(tp)  # past the transaction markers after the records
        events = [self._registry.from_bytes(record.value) for record in records]
        await index_events(self._es, self.projection, self.projection.alias, events)
        await store_offset(self._pool, self.projection.name, tp, max(records[-1].offset + 1, position))

    async def _until_done(self, attempt: Any, what: str) -> None:
        """Retry (Elasticsearch or PostgreSQL down, say) until it lands; the log position never moves past it."""
        delay = 0.5
        while True:
            try:
                await attempt()
                return
            except Exception as error:
                log.warning(
                    "projection %s: %s failed (%r); retrying in %.1fs",
                    self.projection.name,
                    what,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
