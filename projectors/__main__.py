"""Projectors' command line.

    python -m projectors run NAME [NAME ...]   keep read models current (one consumer group each)
    python -m projectors status                 every projection's position and lag, per partition,
                                                and the records its partitions are parked at
    python -m projectors retry NAME PARTITION   apply the record the partition is parked at again
    python -m projectors skip NAME PARTITION    go on past it (the read model will lack that event)
    python -m projectors rebuild NAME           replay from offset 0 into a new table/index, then swap
    python -m projectors reset NAME             drop a read model and its offsets (stop its projector first)

NAME is users, catalog (products in PostgreSQL), catalog-search (the Elasticsearch index),
orders-products (the orders side's replica of the catalog), orders-carts, orders, payments-orders
(the payments side's replica of the orders) or payments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.logging import configure_logging
from config.process import run_until_terminated, tune_garbage_collector
from config.settings import Settings, get_settings
from config.telemetry import configure_tracing
from event_schemas.registry import REGISTRY
from event_schemas.topics import in_namespace
from projectors.catalog.projection import ProductsProjection
from projectors.catalog.search_index import ProductSearchProjection
from projectors.orders.carts import CartsProjection
from projectors.orders.orders import OrdersProjection
from projectors.orders.products import OrderProductsProjection
from projectors.payments.payable_orders import PayableOrdersProjection
from projectors.payments.payments import PaymentsProjection
from projectors.runtime.dead_letters import (
    Decision,
    Parked,
    StoppedAtParkedRecord,
    dead_letter_topic,
    ensure_dead_letters_table,
    parked_records,
    request,
)
from projectors.runtime.metrics import serve_metrics
from projectors.runtime.offsets import ensure_offsets_table, stored_offsets
from projectors.runtime.postgres_runner import PostgresProjectionRunner, reset
from projectors.runtime.projection import Projection
from projectors.runtime.replay import end_offsets
from projectors.users.projection import UsersProjection
from read_models.pool import make_pool, shared_pool

if TYPE_CHECKING:  # the Elasticsearch client is imported only by a process that projects into it (35 MiB)
    from elasticsearch import AsyncElasticsearch

    from projectors.runtime.search_runner import DocumentProjection


@dataclass(frozen=True)
class Registered:
    """A projection into PostgreSQL tables or into an Elasticsearch index, and the PostgreSQL database
    it belongs to (where its offsets are kept in either case)."""

    database_url: str
    tables: Projection | None = None
    index: DocumentProjection | None = None

    @property
    def topic(self) -> str:
        projection = self.tables or self.index
        assert projection is not None
        return projection.topic


def registered(settings: Settings) -> dict[str, Registered]:
    return {
        "users": Registered(settings.users_database_url, tables=UsersProjection(settings.namespace)),
        "catalog": Registered(settings.catalog_database_url, tables=ProductsProjection(settings.namespace)),
        "catalog-search": Registered(
            settings.catalog_database_url, index=ProductSearchProjection(settings.namespace)
        ),
        "orders-products": Registered(
            settings.orders_database_url, tables=OrderProductsProjection(settings.namespace)
        ),
        "orders-carts": Registered(settings.orders_database_url, tables=CartsProjection(settings.namespace)),
        "orders": Registered(settings.orders_database_url, tables=OrdersProjection(settings.namespace)),
        "payments-orders": Registered(
            settings.payments_database_url, tables=PayableOrdersProjection(settings.namespace)
        ),
        "payments": Registered(settings.payments_database_url, tables=PaymentsProjection(settings.namespace)),
    }


def lookup(name: str, settings: Settings) -> Registered:
    known = registered(settings)
    if name not in known:
        raise SystemExit(f"unknown projection {name!r}; known: {', '.join(known)}")
    return known[name]


@asynccontextmanager
async def elasticsearch(settings: Settings) -> AsyncIterator[AsyncElasticsearch]:
    from elasticsearch import AsyncElasticsearch

    async with AsyncElasticsearch(settings.elasticsearch_url, request_timeout=30) as es:
        yield es


async def run(names: list[str], settings: Settings) -> None:
    if settings.projector_metrics_port:
        serve_metrics(settings.projector_metrics_host, settings.projector_metrics_port)
    async with dead_letter_topic(settings.kafka_bootstrap_servers) as dead_letters:

        async def run_one(name: str) -> None:
            entry = lookup(name, settings)
            group_id = in_namespace(settings.namespace, f"{name}-projector")
            # The process's projections on one database share a pool: each applies one batch at a time.
            async with shared_pool(entry.database_url, settings.database_pool_size) as pool:
                if entry.index is not None:
                    from projectors.runtime.search_runner import SearchProjectionRunner

                    async with elasticsearch(settings) as es:
                        await SearchProjectionRunner(
                            entry.index,
                            es,
                            pool,
                            settings.kafka_bootstrap_servers,
                            REGISTRY,
                            group_id,
                            dead_letters,
                            settings.projector_max_batch,
                        ).run()
                elif entry.tables is not None:
                    await PostgresProjectionRunner(
                        entry.tables,
                        pool,
                        settings.kafka_bootstrap_servers,
                        REGISTRY,
                        group_id,
                        dead_letters,
                        settings.projector_max_batch,
                    ).run()

        await asyncio.gather(*(run_one(name) for name in names))


def parked_line(record: Parked) -> str:
    pending = f", {record.decision} requested" if record.decision else ""
    return (
        f"parked at {record.offset} ({record.event_type}, attempt {record.attempts}{pending}): "
        f"{record.error_class}: {record.reason}"
    )


async def status(settings: Settings) -> None:
    print(f"{'projection':<16} {'partition':>9} {'position':>10} {'end':>10} {'lag':>8}")
    for name, entry in registered(settings).items():
        ends = await end_offsets(settings.kafka_bootstrap_servers, entry.topic)
        async with make_pool(entry.database_url) as pool:
            await ensure_offsets_table(pool)
            await ensure_dead_letters_table(pool)
            async with pool.connection() as conn:
                positions = await stored_offsets(conn, name, entry.topic)
                parked = await parked_records(conn, name, entry.topic)
        for partition, end in sorted(ends.items()):
            position = positions.get(partition, 0)
            print(f"{name:<16} {partition:>9} {position:>10} {end:>10} {max(end - position, 0):>8}")
            for record in parked:
                if record.partition == partition:
                    print(f"{'':<16} {'':>9} {parked_line(record)}")


async def decide(name: str, partition: int, decision: Decision, settings: Settings) -> None:
    """Record the operator's decision; the projector that holds the partition acts on it."""
    entry = lookup(name, settings)
    async with make_pool(entry.database_url) as pool:
        await ensure_dead_letters_table(pool)
        async with pool.connection() as conn:
            decided = await request(conn, name, entry.topic, partition, decision)
    if not decided:
        raise SystemExit(f"{name}: partition {partition} of {entry.topic} is not parked")
    for record in decided:
        print(
            f"{name}: {decision} of {entry.topic} partition {partition} offset {record.offset} "
            f"({record.event_type}) requested; its projector acts on it within a second or so"
        )


async def rebuild(name: str, settings: Settings) -> None:
    from projectors.runtime.rebuild import rebuild_index, rebuild_tables

    entry = lookup(name, settings)

    def progress(line: str) -> None:
        print(f"{name}: {line}", file=sys.stderr, flush=True)

    try:
        async with make_pool(entry.database_url) as pool:
            if entry.index is not None:
                async with elasticsearch(settings) as es:
                    meter = await rebuild_index(
                        es, pool, entry.index, settings.kafka_bootstrap_servers, REGISTRY, progress
                    )
            else:
                assert entry.tables is not None
                meter = await rebuild_tables(
                    pool, entry.tables, settings.kafka_bootstrap_servers, REGISTRY, progress
                )
    except* StoppedAtParkedRecord as stopped:  # from the replay's task group, or straight from the swap
        # What the operator must do, not a traceback; one line, though several partitions may stop.
        raise SystemExit(str(first_stop(stopped))) from None
    progress(f"rebuilt from {meter.done} events at {meter.rate:,.0f} events/s")


def first_stop(group: BaseExceptionGroup[StoppedAtParkedRecord]) -> StoppedAtParkedRecord:
    first = group.exceptions[0]
    return first if isinstance(first, StoppedAtParkedRecord) else first_stop(first)


async def reset_projection(name: str, settings: Settings) -> None:
    entry = lookup(name, settings)
    if entry.tables is None:
        raise SystemExit("use `rebuild catalog-search`: it replaces the index without a gap")
    async with make_pool(entry.database_url) as pool:
        await reset(pool, entry.tables)
    print(f"{name}: read model dropped; the next run replays {entry.topic} from the start")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m projectors", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="keep read models current").add_argument("projections", nargs="+")
    commands.add_parser("status", help="positions and lag per partition")
    commands.add_parser("rebuild", help="replay into a new table/index, then swap").add_argument("projection")
    commands.add_parser("reset", help="drop a read model (stop its projector first)").add_argument(
        "projection"
    )
    for decision, help_text in (
        ("retry", "apply a parked partition's record again"),
        ("skip", "go on past a parked partition's record"),
    ):
        decided = commands.add_parser(decision, help=help_text)
        decided.add_argument("projection")
        decided.add_argument("partition", type=int)
    args = parser.parse_args()
    tune_garbage_collector()
    settings = get_settings()
    process_name = "projector-" + "+".join(args.projections) if args.command == "run" else "projectors"
    configure_logging(process_name, settings.log_format, quiet=("aiokafka", "elastic_transport"))
    if args.command == "run":
        configure_tracing(process_name, settings)
        run_until_terminated(run(args.projections, settings))
    elif args.command == "status":
        asyncio.run(status(settings))
    elif args.command == "rebuild":
        asyncio.run(rebuild(args.projection, settings))
    elif args.command in ("retry", "skip"):
        asyncio.run(decide(args.projection, args.partition, args.command, settings))
    else:
        asyncio.run(reset_projection(args.projection, settings))


if __name__ == "__main__":
    main()
