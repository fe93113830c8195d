"""Replay rate of the catalog read models: a full rebuild from offset 0 into PostgreSQL and into
Elasticsearch, beside a plain read of the same log as the baseline.

    python -m bench.catalog_replay [--events 100000]

Writes the events (products created, renamed, restocked and reserved) into a throwaway namespace,
then rebuilds each read model exactly as `python -m projectors rebuild` does. Needs the local stack.
`replay_rates` gives the same figures to `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch
from psycopg import sql

from bench.baselines.databases import database_url
from bench.throwaway import delete_indices, delete_namespace_topics, drop_databases
from command_api.eventstore.partitioning import ID_STRIDE
from config.process import tune_garbage_collector
from config.settings import Settings
from event_schemas.catalog import ProductCreated, ProductUpdated, StockAdjusted, StockReserved
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.registry import REGISTRY
from event_schemas.topics import in_namespace
from infra.topics import ensure_topics
from projectors.catalog.projection import ProductsProjection
from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.rebuild import rebuild_index, rebuild_tables
from projectors.runtime.replay import end_offsets, read_range
from read_models.pool import make_pool


def product_history(product_id: int, now: datetime) -> list[Event]:
    """Four events of one product, as its command side would have decided them."""
    common = {"aggregate_id": f"product-{product_id}", "occurred_at": now, "product_id": product_id}
    return [
        ProductCreated(
            **common,
            aggregate_version=1,
            name=f"Product {product_id} wireless gadget",
            description="A dependable gadget for everyday use, with a two year warranty",
            price=Money(amount=Decimal("19.99")),
            stock=100,
        ),
        ProductUpdated(**common, aggregate_version=2, price=Money(amount=Decimal("17.49"))),
        StockAdjusted(**common, aggregate_version=3, delta=50, stock=150, reason="delivery"),
        StockReserved(**common, aggregate_version=4, order_id=f"order-{product_id}", quantity=2, stock=148),
    ]


async def write_log(settings: Settings, topic: str, products: int) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        transactional_id=f"{settings.namespace}-bench-writer",
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    now = datetime.now(UTC)
    written = 0
    try:
        for first in range(0, products, 1000):
            await producer.begin_transaction()
            for n in range(first, min(first + 1000, products)):
                partition = n % settings.kafka_partitions
                product_id = (n // settings.kafka_partitions + 1) * ID_STRIDE + partition
                for event in product_history(product_id, now):
                    await producer.send(
                        topic,
                        value=REGISTRY.to_bytes(event),
                        key=event.aggregate_id.encode(),
                        partition=partition,
                        headers=REGISTRY.headers(event),
                    )
                    written += 1
            await producer.commit_transaction()
    finally:
        await producer.stop()
    return written


async def read_baseline(settings: Settings, topic: str) -> float:
    """Events/s of reading and decoding the log, with nothing written anywhere."""
    ends = await end_offsets(settings.kafka_bootstrap_servers, topic)
    started, count = time.perf_counter(), 0
    async for _, records in read_range(settings.kafka_bootstrap_servers, topic, {}, ends):
        count += len([REGISTRY.from_bytes(record.value) for record in records])
    return count / (time.perf_counter() - started)


@dataclass(frozen=True)
class ReplayRates:
    events: int  # written to the log, and replayed into each read model
    write_seconds: float
    read_and_decode: float  # events/s, the baseline: the log read with nothing written
    postgres: float  # events/s of the rebuild into the products table
    elasticsearch: float  # events/s of the rebuild into the product index


async def replay_rates(
    events: int,
    admin_url: str,
    bootstrap_servers: str,
    elasticsearch_url: str,
    progress: Callable[[str], None] = print,
) -> ReplayRates:
    """Write about `events` product events into a throwaway namespace, rebuild both catalog read
    models from them (as `python -m projectors rebuild` does) and measure each; the namespace's
    topics, database and indices are deleted at the end."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    database = f"{namespace}_catalog"
    settings = Settings(
        namespace=namespace,
        kafka_bootstrap_servers=bootstrap_servers,
        elasticsearch_url=elasticsearch_url,
        catalog_database_url=database_url(admin_url, database),
    )
    topic = in_namespace(namespace, "catalog.events")
    projection = ProductSearchProjection(namespace)
    try:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        await ensure_topics(settings)
        started = time.perf_counter()
        written = await write_log(settings, topic, events // 4)
        write_seconds = time.perf_counter() - started
        progress(f"wrote {written} product events in {write_seconds:.1f}s")
        baseline = await read_baseline(settings, topic)

        def quiet(line: str) -> None:
            pass

        async with make_pool(settings.catalog_database_url) as pool:
            tables = await rebuild_tables(
                pool, ProductsProjection(namespace), settings.kafka_bootstrap_servers, REGISTRY, quiet
            )
            async with AsyncElasticsearch(settings.elasticsearch_url, request_timeout=120) as es:
                index = await rebuild_index(
                    es, pool, projection, settings.kafka_bootstrap_servers, REGISTRY, quiet
                )
        return ReplayRates(written, write_seconds, baseline, tables.rate, index.rate)
    finally:
        await delete_indices(elasticsearch_url, f"{projection.alias}-")
        await delete_namespace_topics(bootstrap_servers, [namespace])
        drop_databases(admin_url, [database])


async def main(events: int, admin_url: str) -> None:
    settings = Settings()
    rates = await replay_rates(
        events, admin_url, settings.kafka_bootstrap_servers, settings.elasticsearch_url
    )
    print(f"{'baseline: read and decode the log':<44} {rates.read_and_decode:>9,.0f} events/s")
    for name, rate in (
        ("rebuild into PostgreSQL (products)", rates.postgres),
        ("rebuild into Elasticsearch (product index)", rates.elasticsearch),
    ):
        print(f"{name:<44} {rate:>9,.0f} events/s  ratio to baseline {rate / rates.read_and_decode:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.catalog_replay")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--admin-database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    arguments = parser.parse_args()
    tune_garbage_collector()  # as the services and projectors do
    asyncio.run(main(arguments.events, arguments.admin_database_url))
