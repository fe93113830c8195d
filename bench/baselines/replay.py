"""Baselines for a replay of the catalog's read models, on the product histories bench/catalog_replay.py
writes: the plainest ways to put the same rows and documents into PostgreSQL and Elasticsearch.

- `copy_rows`: PostgreSQL `COPY` of the final rows (the ceiling for writing them);
- `naive_projector`: one transaction per event, each a plain INSERT or UPDATE (the usual first
  projector, which our batch fold replaces);
- `bulk_documents`: Elasticsearch `_bulk` of the final documents (the ceiling for indexing them).

The events are built in memory, so no Kafka read or decoding is counted. "events/s equivalent" is the
number of events that led to the rows (or documents) over the seconds it took to write them.

    python -m bench.baselines.replay [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk
from psycopg import AsyncConnection, sql

from bench.baselines.databases import throwaway_database
from bench.catalog_replay import product_history
from command_api.eventstore.partitioning import ID_STRIDE
from event_schemas.catalog import (
    ProductCreated,
    ProductDeleted,
    ProductEvent,
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReserved,
)
from event_schemas.envelope import Event
from projectors.catalog.projection import COLUMNS, ProductsProjection, fold
from projectors.catalog.search_index import MAPPING, SETTINGS, to_document
from projectors.runtime.projection import Row

TABLE = "products"
PARTITIONS = 6
EVENTS_PER_PRODUCT = 4
# The naive projector manages a few thousand events/s at best: keep its runs short.
NAIVE_MAX_EVENTS = 20_000
NAIVE_MAX_SECONDS = 10.0
# Documents per bulk request: our projector's default batch (COMMERCE_PROJECTOR_MAX_BATCH).
BULK_CHUNK = 5000


def product_events(events: int) -> list[Event]:
    """About `events` events (whole histories of events // 4 products), ids spread over 6 partitions as
    bench/catalog_replay.py spreads them."""
    now = datetime.now(UTC)
    history: list[Event] = []
    for n in range(max(events // EVENTS_PER_PRODUCT, 1)):
        history.extend(product_history((n // PARTITIONS + 1) * ID_STRIDE + n % PARTITIONS, now))
    return history


def final_rows(events: list[Event]) -> list[Row]:
    """The products read model's rows after `events`, folded by the projection itself."""
    return list(fold({}, events).values())


async def create_products_table(conn: AsyncConnection[Any]) -> None:
    for statement in ProductsProjection("bench").schema(TABLE):
        await conn.execute(statement)


async def count_rows(conn: AsyncConnection[Any]) -> int:
    cursor = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE)))
    found = await cursor.fetchone()
    return int(found[0]) if found else 0


async def copy_rows(admin_database_url: str, events: int) -> dict[str, float]:
    """COPY the final product rows of `events` events into a fresh products table (in a throwaway
    database). Returns events, rows, seconds (COPY and commit), rows_per_second, events_per_second."""
    history = product_events(events)
    rows = final_rows(history)
    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
        table=sql.Identifier(TABLE), columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    with throwaway_database(admin_database_url, "bench_copy") as url:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await create_products_table(conn)
            started = time.perf_counter()
            async with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    await copy.write_row([row[column] for column in COLUMNS])
            seconds = time.perf_counter() - started
            if await count_rows(conn) != len(rows):
                raise RuntimeError("COPY did not write every row")
    return {
        "events": float(len(history)),
        "rows": float(len(rows)),
        "seconds": seconds,
        "rows_per_second": len(rows) / seconds,
        "events_per_second": len(history) / seconds,
    }


def naive_statement(event: Event) -> tuple[sql.Composed, dict[str, Any]] | None:
    """The one statement a naive projector runs for an event."""
    if not isinstance(event, ProductEvent):
        return None
    table = sql.Identifier(TABLE)
    common = {"id": event.product_id, "version": event.aggregate_version, "at": event.occurred_at}
    if isinstance(event, ProductCreated):
        return sql.SQL(
            "INSERT INTO {} (id, name, description, price, currency, stock, version, created_at, updated_at) "
            "VALUES (%(id)s, %(name)s, %(description)s, %(price)s, %(currency)s, %(stock)s, %(version)s, "
            "%(at)s, %(at)s)"
        ).format(table), common | {
            "name": event.name,
            "description": event.description,
            "price": event.price.amount,
            "currency": event.price.currency,
            "stock": event.stock,
        }
    if isinstance(event, ProductUpdated):
        return sql.SQL(
            "UPDATE {} SET name = coalesce(%(name)s, name), description = coalesce(%(description)s, "
            "description), price = coalesce(%(price)s, price), currency = coalesce(%(currency)s, currency), "
            "version = %(version)s, updated_at = %(at)s WHERE id = %(id)s"
        ).format(table), common | {
            "name": event.name,
            "description": event.description,
            "price": None if event.price is None else event.price.amount,
            "currency": None if event.price is None else event.price.currency,
        }
    if isinstance(event, StockAdjusted | StockReserved | StockReleased):
        return sql.SQL(
            "UPDATE {} SET stock = %(stock)s, version = %(version)s, updated_at = %(at)s WHERE id = %(id)s"
        ).format(table), common | {"stock": event.stock}
    if isinstance(event, ProductDeleted):
        return sql.SQL(
            "UPDATE {} SET deleted_at = %(at)s, version = %(version)s, updated_at = %(at)s WHERE id = %(id)s"
        ).format(table), common
    return None


async def naive_projector(
    admin_database_url: str,
    events: int,
    *,
    max_events: int = NAIVE_MAX_EVENTS,
    max_seconds: float = NAIVE_MAX_SECONDS,
) -> dict[str, float]:
    """Apply min(events, max_events) events one transaction each (stopping early after max_seconds) to
    a fresh products table in a throwaway database. Returns events (those applied), seconds,
    events_per_second, rows."""
    history = product_events(min(events, max_events))
    with throwaway_database(admin_database_url, "bench_naive") as url:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await create_products_table(conn)
            applied = 0
            started = time.perf_counter()
            for event in history:
                statement = naive_statement(event)
                if statement is not None:
                    async with conn.transaction():
                        await conn.execute(*statement)
                applied += 1
                if time.perf_counter() - started > max_seconds:
                    break
            seconds = time.perf_counter() - started
            rows = await count_rows(conn)
    return {
        "events": float(applied),
        "seconds": seconds,
        "events_per_second": applied / seconds,
        "rows": float(rows),
    }


async def bulk_documents(
    elasticsearch_url: str, events: int, *, chunk_size: int = BULK_CHUNK
) -> dict[str, float]:
    """Index the final search documents of `events` events with `_bulk` (chunk_size per request) into
    a throwaway index with the product mapping and refresh_interval -1, then refresh it once. Returns
    events, documents, seconds (the bulk requests), docs_per_second, events_per_second,
    refresh_seconds (the final refresh, not in the rates)."""
    history = product_events(events)
    documents = [to_document(row) for row in final_rows(history)]
    index = f"bench-replay-{uuid.uuid4().hex[:8]}"
    async with AsyncElasticsearch(elasticsearch_url, request_timeout=120) as es:
        await es.indices.create(index=index, mappings=MAPPING, settings=SETTINGS | {"refresh_interval": "-1"})
        try:
            started = time.perf_counter()
            indexed, _ = await async_bulk(
                es,
                (
                    {"_index": index, "_id": str(document["id"]), "_source": document}
                    for document in documents
                ),
                chunk_size=chunk_size,
            )
            seconds = time.perf_counter() - started
            await es.indices.refresh(index=index)
            refresh_seconds = time.perf_counter() - started - seconds
            if (await es.count(index=index))["count"] != len(documents) or indexed != len(documents):
                raise RuntimeError("the bulk requests did not index every document")
        finally:
            await es.indices.delete(index=index, ignore_unavailable=True)
    return {
        "events": float(len(history)),
        "documents": float(len(documents)),
        "seconds": seconds,
        "docs_per_second": len(documents) / seconds,
        "events_per_second": len(history) / seconds,
        "refresh_seconds": refresh_seconds,
    }


async def main(events: int, admin_database_url: str, elasticsearch_url: str) -> None:
    copied = await copy_rows(admin_database_url, events)
    print(
        f"{'PostgreSQL COPY of the final rows':<40} {copied['rows_per_second']:>10,.0f} rows/s  "
        f"{copied['events_per_second']:>10,.0f} events/s equivalent"
    )
    naive = await naive_projector(admin_database_url, events)
    print(
        f"{'naive projector (a transaction an event)':<40} {naive['events_per_second']:>10,.0f} events/s  "
        f"({naive['events']:,.0f} events)"
    )
    bulk = await bulk_documents(elasticsearch_url, events)
    print(
        f"{'Elasticsearch _bulk of the final docs':<40} {bulk['docs_per_second']:>10,.0f} docs/s  "
        f"{bulk['events_per_second']:>10,.0f} events/s equivalent"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.replay")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--admin-database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--elasticsearch-url", default="http://127.0.0.1:9200")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.admin_database_url, arguments.elasticsearch_url))
