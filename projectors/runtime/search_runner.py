"""The consume loop of an Elasticsearch projection.

Elasticsearch writes cannot share a transaction with the offsets, so the order is: lock the
partition's offset row in PostgreSQL, write the batch with external versions (idempotent and
order-safe), then store the partition's next offset and commit. A crash between the two repeats the
batch, which the external versions turn into no-ops. Writes go through an alias, so a rebuild can
build a new index and swap it in; it moves the alias only while it holds every offset row, so a batch
reads and writes one index from start to end, and starts where that index stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from elasticsearch import AsyncElasticsearch, BadRequestError

from event_schemas.envelope import Event
from event_schemas.registry import EventRegistry
from projectors.runtime.consume_loop import ProjectionLoop
from projectors.runtime.dead_letters import DeadLetterTopic
from projectors.runtime.failures import ServerBusy, is_transient_status
from projectors.runtime.offsets import ensure_offsets_table, hold_offset, move_offset
from read_models.changes import ChangeNotice, announce
from read_models.pool import Pool

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


class IndexBusy(ServerBusy):
    """Elasticsearch refused documents of a bulk request for now (queue full, shard unavailable)."""


async def create_index(
    es: AsyncElasticsearch, projection: DocumentProjection, *, with_alias: bool, name: str | None = None
) -> str:
    """A new, empty index for the projection (named after the alias and the time, unless named)."""
    index = name or f"{projection.alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    aliases: dict[str, Any] = {projection.alias: {}} if with_alias else {}
    await es.indices.create(
        index=index, mappings=dict(projection.mapping), settings=dict(projection.settings), aliases=aliases
    )
    return index


async def ensure_index(es: AsyncElasticsearch, projection: DocumentProjection) -> None:
    if not await es.indices.exists_alias(name=projection.alias) and await claim_alias(es, projection):
        return
    # An index made by an earlier version learns the fields added since (adding a field is
    # allowed on a live index; changing one needs a rebuild).
    await es.indices.put_mapping(index=projection.alias, properties=dict(projection.mapping["properties"]))


async def claim_alias(es: AsyncElasticsearch, projection: DocumentProjection) -> bool:
    """Put a first index under the alias, unless an index got there first; True if it did.

    The live side's first index has one fixed name, created with the alias in one request: of several
    live instances that found no alias, exactly one creates it (Elasticsearch refuses to create an
    index twice), and the others use the alias. A rebuild's swap (rebuild.py) may still put its own
    index under the alias between the look for the alias and the create: then the alias names both,
    nothing can have been written through it (a write to an alias of two indices is refused), and the
    first index is deleted, which takes it out of the alias; the rebuilt one serves."""
    index = f"{projection.alias}-first"
    try:
        await create_index(es, projection, with_alias=True, name=index)
    except BadRequestError as error:
        if error.error != "resource_already_exists_exception":
            raise
        return False  # another live instance created it
    if set(await es.indices.get_alias(name=projection.alias)) == {index}:
        return True
    await es.indices.delete(index=index, ignore_unavailable=True)
    return False


async def index_events(
    es: AsyncElasticsearch, projection: DocumentProjection, target: str, events: Sequence[Event]
) -> None:
    """Fold `events` into the documents of `target` (an index or the alias) and write them."""
    needed = sorted(projection.needs_current(events))
    current: dict[str, Document] = {}
    if needed:
        found = await es.mget(index=target, ids=needed)
        current = {doc["_id"]: doc["_source"] for doc in found["docs"] if doc.get("found")}
    documents = projection.fold(current, events)
    if not documents:
        return
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
            busy = [failure for failure in failures if is_transient_status(failure["status"])]
            first = (busy or failures)[0]
            message = f"{len(failures)} documents failed, first: {first.get('error')}"
            # A refusal for the server's sake (429, 5xx) is retried; one for the document's parks it.
            raise IndexBusy(message) if busy else IndexWriteFailed(message)


class SearchProjectionRunner(ProjectionLoop[DocumentProjection]):
    """Keeps a search index current, as a member of the projection's consumer group."""

    def __init__(
        self,
        projection: DocumentProjection,
        es: AsyncElasticsearch,
        pool: Pool,
        bootstrap_servers: str,
        registry: EventRegistry,
        group_id: str,
        dead_letters: DeadLetterTopic,
        max_batch: int = 5000,
    ) -> None:
        super().__init__(projection, pool, bootstrap_servers, registry, group_id, dead_letters, max_batch)
        self._es = es

    async def prepare(self) -> None:
        await ensure_offsets_table(self.pool)
        await ensure_index(self._es, self.projection)

    async def apply_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord], position: int) -> None:
        # The offset row is held from before the documents are read until the offset is stored: a
        # rebuild's swap, which holds every row, falls between two batches (rebuild.py), and may have
        # moved the offset past records the new index already holds.
        async with self.pool.connection() as conn, conn.transaction():
            stored = await hold_offset(conn, self.name, tp)
            fresh = [record for record in records if record.offset >= stored]
            if not fresh:
                return
            events = [self.registry.from_bytes(record.value) for record in fresh]
            await index_events(self._es, self.projection, self.projection.alias, events)
            next_offset = max(fresh[-1].offset + 1, position)
            await move_offset(conn, self.name, tp, next_offset)
            # Heard when the offset commits, after the documents are written (though they are
            # searchable only after the index's next refresh).
            await announce(
                conn,
                ChangeNotice.of_batch(
                    self.name, tp.topic, tp.partition, next_offset, {e.aggregate_id for e in events}
                ),
            )
