"""The figures of `python -m bench`, each beside the baseline it is judged against (measured in the same
run), in the order they run: reads first (on a catalog that nothing else writes to yet), then
commands, reads beside writes into the same gateway (the own-writes wait), projection lag, the event
store alone, replay, order confirmation (its services start only then, so they weigh on no other
figure), and memory last. Targets are issue 7's."""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx

from bench.baselines.producer_performance import producer_performance_async
from bench.baselines.replay import bulk_documents, copy_rows, naive_projector
from bench.catalog_data import ADJUSTMENT, FIXED_TERM, NEW_PRODUCT, SEARCH_TERMS
from bench.catalog_replay import replay_rates
from bench.chaos import PAYMENT_WINDOW_SECONDS, report, run_chaos
from bench.chaos import start_stack as start_chaos_stack
from bench.client import send, session
from bench.cold_start import cold_start_times
from bench.eventstore_append import compare_appends
from bench.harness import Harness
from bench.lag import percentile, probe_visibility
from bench.load import WrkResult, run_wrk
from bench.order_confirmation import (
    OrderDecisions,
    create_order_products,
    place_orders,
    wait_until_replicated,
)
from bench.page_load import PageLoads, page_loads
from bench.platform_rows import platform
from bench.report import Row, wrk_row
from bench.soak import soak as soak_run
from bench.state_scale import state_scale
from bench.steady_writes import Spec, SteadyWrites
from command_api.eventstore.partitioning import ID_STRIDE
from event_schemas import topics
from tests.support.users_client import PASSWORD, new_email, register, token_for

READ_TARGET = ">= 0.5x, p99 <= 20 ms"
COMMAND_TARGET = ">= 3x, >= 3,000/s, p99 <= 50 ms"
# The own-writes figure: stock adjustments per second into the gateway that serves the reads, and the
# COMMERCE_OWN_WRITES_WAIT_SECONDS of its two gateways.
OWN_WRITES_RATE = 150
OWN_WRITES_WAIT = {"off": "0", "on": "2"}
# Customers placing orders at once, each waiting for its order's confirmation before the next starts.
CUSTOMERS = 20


async def trivial(h: Harness) -> None:
    """The framework's ceiling, the baseline of every read."""
    await h.trivial(64)
    await h.trivial(16)


async def health(h: Harness) -> None:
    services = await h.services()
    baseline = await h.trivial(64)
    h.say("catalog GET /health at 64 connections")
    result = await h.load(f"{services.catalog_url}/health", 64)
    h.record(wrk_row("catalog GET /health @64", result, target=">= 0.5x").compared_with(baseline))


async def product(h: Harness) -> None:
    services, ids = await h.services(), await h.product_ids()
    baseline = await h.trivial(16)
    script = h.script(
        "get-product",
        "spread_ids.lua",
        {"method": "GET", "path": "/products/{id}", "ids": ids, "body": "", "token": ""},
    )
    h.say(f"catalog GET /products/{{id}} over {len(ids):,} ids at 16 connections")
    result = await h.load(services.catalog_url, 16, script)
    figure = f"catalog GET /products/{{id}} @16 ({len(ids):,} ids)"
    h.record(wrk_row(figure, result, target=READ_TARGET).compared_with(baseline))


async def validate(h: Harness) -> None:
    services = await h.services()
    baseline = await h.trivial(16)
    email = new_email()
    registered = await asyncio.to_thread(register, services.users_url, email)
    if registered.status_code != 201:
        raise RuntimeError(f"registering a customer answered {registered.status_code}: {registered.text}")
    token = await asyncio.to_thread(token_for, services.users_url, email)
    script = h.script(
        "validate",
        "fixed_request.lua",
        {"method": "GET", "path": "/auth/validate", "body": "", "token": token},
    )
    h.say("users GET /auth/validate at 16 connections")
    result = await h.load(services.users_url, 16, script)
    h.record(
        wrk_row("users GET /auth/validate @16 (customer)", result, target=READ_TARGET).compared_with(baseline)
    )


async def login(h: Harness) -> None:
    """users POST /auth/login at 16 connections, one account's right password (an argon2id check each;
    the bench's deployment lifts the limits on callers, as a load from one address would hit them)."""
    services = await h.services()
    email = new_email()
    registered = await asyncio.to_thread(register, services.users_url, email)
    if registered.status_code != 201:
        raise RuntimeError(f"registering a customer answered {registered.status_code}: {registered.text}")
    body = json.dumps({"email": email, "password": PASSWORD})
    script = h.script(
        "login", "fixed_request.lua", {"method": "POST", "path": "/auth/login", "body": body, "token": ""}
    )
    h.say("users POST /auth/login at 16 connections")
    result = await h.load(services.users_url, 16, script)
    h.record(
        wrk_row(
            "users POST /auth/login @16 (right password)", result, target=">= 2x the Node system (>= 19/s)"
        )
    )


async def search(h: Harness) -> None:
    services, ids = await h.services(), await h.product_ids()
    target = ">= 1,500 req/s, p99 <= 50 ms"
    rotating = [f"/products?search={quote(term)}&limit=20" for term in SEARCH_TERMS]
    for name, paths, figure in (
        ("search-rotating", rotating, f"catalog search, {len(rotating)} rotating terms @16"),
        (
            "search-fixed",
            [f"/products?search={quote(FIXED_TERM)}&limit=20"],
            f"catalog search '{FIXED_TERM}' @16",
        ),
    ):
        h.say(f"{figure} on {len(ids):,} products")
        result = await h.load(services.catalog_url, 16, h.script(name, "rotate_paths.lua", {"paths": paths}))
        h.record(wrk_row(f"{figure} ({len(ids):,} products)", result, target=target))


async def create(h: Harness) -> None:
    services, baseline_url = await h.services(), await h.eventsourcing_url()
    h.say("eventsourcing app POST /products at 64 connections")
    theirs = await h.load(
        baseline_url,
        64,
        h.script(
            "es-create",
            "fixed_request.lua",
            {"method": "POST", "path": "/products", "body": NEW_PRODUCT, "token": ""},
        ),
    )
    baseline = h.record(
        wrk_row(
            "eventsourcing app POST /products @64", theirs, unit="commands/s", label="eventsourcing app @64"
        )
    )
    h.say("catalog POST /products at 64 connections")
    ours = await h.load(
        services.catalog_url,
        64,
        h.script(
            "create",
            "fixed_request.lua",
            {"method": "POST", "path": "/products", "body": NEW_PRODUCT, "token": services.admin_token},
        ),
    )
    row = wrk_row("catalog POST /products (admin) @64", ours, unit="commands/s", target=COMMAND_TARGET)
    h.record(row.compared_with(baseline))


async def eventsourcing_products(url: str, count: int) -> list[str]:
    """Ids of `count` new products in the eventsourcing app (its ids are UUIDs)."""
    ids: list[str] = []

    async def worker(http: aiohttp.ClientSession) -> None:
        while len(ids) < count:
            answer = await send(http, "POST", f"{url}/products", body=NEW_PRODUCT)
            if answer.status != 201:
                raise RuntimeError(f"eventsourcing app answered {answer.status}: {answer.text[:300]}")
            ids.append(str(answer.json()["id"]))

    async with session(16) as http:
        await asyncio.gather(*(worker(http) for _ in range(16)))
    return ids[:count]


async def adjust(h: Harness) -> None:
    services, catalog_ids = await h.services(), await h.product_ids()
    baseline_url = await h.eventsourcing_url()
    count = h.size.adjusted_products
    their_ids = await eventsourcing_products(baseline_url, count)
    path = "/products/{id}/stock-adjustments"
    h.say(f"eventsourcing app stock adjustments over {count:,} products at 64 connections")
    theirs = await h.load(
        baseline_url,
        64,
        h.script(
            "es-adjust",
            "spread_ids.lua",
            {"method": "POST", "path": path, "ids": their_ids, "body": ADJUSTMENT, "token": ""},
        ),
    )
    baseline = h.record(
        wrk_row(
            f"eventsourcing app stock adjustments @64 ({count:,} products)",
            theirs,
            unit="commands/s",
            label="eventsourcing app @64",
        )
    )
    h.say(f"catalog stock adjustments over {count:,} products at 64 connections")
    ours = await h.load(
        services.catalog_url,
        64,
        h.script(
            "adjust",
            "spread_ids.lua",
            {
                "method": "POST",
                "path": path,
                "ids": catalog_ids[:count],
                "body": ADJUSTMENT,
                "token": services.admin_token,
            },
        ),
    )
    figure = f"catalog POST /products/{{id}}/stock-adjustments @64 ({count:,} products)"
    h.record(wrk_row(figure, ours, unit="commands/s", target=COMMAND_TARGET).compared_with(baseline))


def own_writes_reads_row(figure: str, runs: list[WrkResult], label: str = "") -> Row:
    """One row of the reads' runs on one side: answers below 400 per second over all of them, the
    mean of their p50s and of their p99s."""
    requests = sum(run.requests - run.non_2xx for run in runs)
    seconds = sum(run.seconds for run in runs)
    details = {"requests": float(requests), "seconds": seconds, "runs": float(len(runs))}
    for number, run in enumerate(runs, 1):
        details |= {
            f"run{number}_requests_per_second": run.ok_per_second,
            f"run{number}_p50_ms": run.p50_ms,
            f"run{number}_p99_ms": run.p99_ms,
        }
    return Row(
        figure,
        requests / seconds,
        "req/s",
        statistics.mean(run.p50_ms for run in runs),
        statistics.mean(run.p99_ms for run in runs),
        errors=sum(run.errors for run in runs),
        details=details,
        label=label,
    )


def own_writes_writes_row(figure: str, runs: list[dict[str, Any]], label: str = "") -> Row:
    """One row of the writer's runs on one side: commands answered below 400 per second over all of
    them, the mean of their p50s and p99s (the writer keeps every sample)."""
    ok, seconds = sum(run["ok"] for run in runs), sum(run["seconds"] for run in runs)
    answered = [run for run in runs if run["p50_ms"] is not None]
    details = {
        "sent": float(sum(run["sent"] for run in runs)),
        "late": float(sum(run["late"] for run in runs)),
        "seconds": seconds,
    }
    for number, run in enumerate(runs, 1):
        details[f"run{number}_commands_per_second"] = run["rate"]
    return Row(
        figure,
        ok / seconds,
        "commands/s",
        statistics.mean(run["p50_ms"] for run in answered) if answered else None,
        statistics.mean(run["p99_ms"] for run in answered) if answered else None,
        errors=sum(run["failures"] for run in runs),
        details=details,
        label=label,
    )


async def own_writes(h: Harness) -> None:
    """What the own-writes wait costs a read under write load: GET /products/{id} without a consistency
    token but with the writer's own bearer token (the wait is for the caller's own writes: an anonymous
    read, or another caller's, never waits), on a catalog gateway that takes OWN_WRITES_RATE stock adjustments per second itself
    (the wait is per process), with the wait (COMMERCE_OWN_WRITES_WAIT_SECONDS=2) and without (=0). Two
    new gateways, one each way, measured one after the other (off, on; off, on, on, off in the full
    run); each takes the writes of its own partitions only, since a command it forwards to the owner
    is not its own write."""
    services, ids = await h.services(), await h.product_ids()
    gateways = await h.extra_catalog_gateways(
        {side: {"COMMERCE_OWN_WRITES_WAIT_SECONDS": wait} for side, wait in OWN_WRITES_WAIT.items()}
    )
    try:
        owned: dict[str, list[int]] = {}
        for side, gateway in gateways.items():
            answer = await asyncio.to_thread(
                httpx.get,
                f"{gateway.url}/internal/partitions",
                headers={"Authorization": f"Bearer {services.admin_token}"},
                timeout=5,
            )
            partitions = set(answer.json()["catalog"]["owned"])
            owned[side] = [product for product in ids if product % ID_STRIDE in partitions]
            if not owned[side]:
                raise RuntimeError(f"the wait-{side} gateway owns no product of the catalog ({partitions})")
        script = h.script(
            "own-writes-get",
            "spread_ids.lua",
            {
                "method": "GET",
                "path": "/products/{id}",
                "ids": ids,
                "body": "",
                "token": services.admin_token,
            },
        )
        reads: dict[str, list[WrkResult]] = {side: [] for side in gateways}
        writes: dict[str, list[dict[str, Any]]] = {side: [] for side in gateways}
        lead = 1.0  # the writes run steadily before wrk starts, and a little after it ends
        order = ["off", "on"] if h.size.quick else ["off", "on", "on", "off"]
        for number, side in enumerate(order, 1):
            spec = Spec(
                url=gateways[side].url,
                path="/products/{id}/stock-adjustments",
                ids=owned[side],
                body=ADJUSTMENT,
                token=services.admin_token,
                rate=OWN_WRITES_RATE,
                seconds=lead + h.size.warmup_seconds + h.size.seconds + lead,
                in_flight=32,
            )
            h.say(
                f"own writes, wait {side}: GET /products/{{id}} at 16 connections beside "
                f"{OWN_WRITES_RATE} stock adjustments/s over {len(owned[side]):,} products ({number}/{len(order)})"
            )
            async with SteadyWrites(spec, h.work_dir / "writes" / f"own-writes-{number}.json") as writer:
                await asyncio.sleep(lead)
                reads[side].append(await h.load(gateways[side].url, 16, script))
                writes[side].append(await writer.outcome())
    finally:
        await h.stop_extra_catalog_gateways(gateways.values())
    reads_figure = (
        f"catalog GET /products/{{id}} @16 ({len(ids):,} ids), {OWN_WRITES_RATE} adjustments/s beside"
    )
    off = h.record(own_writes_reads_row(f"{reads_figure}, own-writes wait off", reads["off"], "wait off"))
    h.record(
        own_writes_reads_row(f"{reads_figure}, own-writes wait on (2 s)", reads["on"]).compared_with(off)
    )
    writes_off = h.record(
        own_writes_writes_row(
            f"stock adjustments beside the reads ({len(owned['off']):,} products), wait off",
            writes["off"],
            "writes, wait off",
        )
    )
    h.record(
        own_writes_writes_row(
            f"stock adjustments beside the reads ({len(owned['on']):,} products), wait on",
            writes["on"],
        ).compared_with(writes_off)
    )


async def lag(h: Harness) -> None:
    """Command -> visible in GET /products/{id}, idle and while wrk drives POST /products."""
    services = await h.services()
    h.say(f"projection lag, idle, for {h.size.probe_idle_seconds:.0f}s")
    idle = await probe_visibility(services.catalog_url, services.admin_token, h.size.probe_idle_seconds)
    h.record(
        Row(
            "projection lag idle: command -> visible (probe every 50 ms)",
            idle.probes / h.size.probe_idle_seconds,
            "commands/s",
            idle.p50_ms,
            idle.p99_ms,
            errors=idle.failures,
            details={
                "probe_command_p50_ms": idle.command_p50_ms,
                "probe_command_p99_ms": idle.command_p99_ms,
            },
        )
    )
    script = h.script(
        "lag-load",
        "fixed_request.lua",
        {"method": "POST", "path": "/products", "body": NEW_PRODUCT, "token": services.admin_token},
    )
    # The probe runs inside the load, after wrk has opened its connections and before it stops.
    lead = 1.0
    h.say(f"projection lag under POST /products at 64 connections for {h.size.seconds:.0f}s")
    load = asyncio.create_task(run_wrk(services.catalog_url, 64, h.size.seconds, script))
    await asyncio.sleep(lead)
    loaded = await probe_visibility(
        services.catalog_url, services.admin_token, max(h.size.seconds - 2 * lead, 1)
    )
    result = await load
    h.record(
        Row(
            "projection lag under load: command -> visible, load rate beside",
            result.ok_per_second,
            "commands/s",
            loaded.p50_ms,
            loaded.p99_ms,
            errors=loaded.failures + result.errors,
            target="p99 <= 100 ms at 1,000 commands/s",
            details={
                "probes": float(loaded.probes),
                "probe_failures": float(loaded.failures),
                "probe_command_p50_ms": loaded.command_p50_ms,
                "probe_command_p99_ms": loaded.command_p99_ms,
                "load_p50_ms": result.p50_ms,
                "load_p99_ms": result.p99_ms,
                "load_errors": float(result.errors),
            },
        )
    )


async def eventstore(h: Harness) -> None:
    """The event store alone, 64 commands in flight, beside a plain producer and Kafka's own tool."""
    bootstrap = h.servers.kafka_bootstrap
    h.say(f"event store and plain producer, {h.size.append_commands:,} commands each at 64 in flight")
    compared = (await compare_appends(bootstrap, h.size.append_commands, [64]))[64]
    h.say(f"Kafka ProducerPerformance, {h.size.producer_records:,} records of {compared.record_size} bytes")
    tool = await producer_performance_async(
        bootstrap,
        f"bench-producer-performance-{uuid.uuid4().hex[:8]}",
        h.size.producer_records,
        compared.record_size,
    )
    jvm = h.record(
        Row(
            f"Kafka ProducerPerformance, acks=all, {compared.record_size}-byte records",
            tool["records_per_second"],
            "records/s",
            tool["p50_ms"],
            tool["p99_ms"],
            details=tool,
            label="ProducerPerformance",
        )
    )
    plain = compared.plain_producer
    producer = h.record(
        Row(
            "plain producer (idempotent, acks=all), 64 in flight",
            plain.rate,
            "records/s",
            plain.p50_ms,
            plain.p99_ms,
            details={"commands": float(plain.commands)},
            label="plain producer @64",
        ).compared_with(jvm)
    )
    store = compared.event_store
    h.record(
        Row(
            "event store append (a transaction each), 64 in flight",
            store.rate,
            "commands/s",
            store.p50_ms,
            store.p99_ms,
            target=">= 0.5x",
            details={"commands": float(store.commands)},
        ).compared_with(producer)
    )


async def replay(h: Harness) -> None:
    """Rebuilding the catalog read models from the log, beside the plainest ways to write the same."""
    events, admin_url, es_url = (
        h.size.replay_events,
        h.servers.postgres_admin_url,
        h.servers.elasticsearch_url,
    )
    h.say(f"replay of {events:,} catalog events into PostgreSQL and Elasticsearch")
    rates = await replay_rates(events, admin_url, h.servers.kafka_bootstrap, es_url, progress=h.say)
    h.say("replay baselines: COPY, raw _bulk, a naive projector")
    copied = await copy_rows(admin_url, events)
    bulked = await bulk_documents(es_url, events)
    naive = await naive_projector(admin_url, events, max_seconds=3 if h.size.quick else 10)
    n = f"{rates.events:,} events"
    h.record(Row(f"replay baseline: read and decode the log ({n})", rates.read_and_decode, "events/s"))
    copy = h.record(
        Row(
            f"replay baseline: PostgreSQL COPY of the final rows ({n})",
            copied["events_per_second"],
            "events/s",
            details=copied,
            label="COPY",
        )
    )
    bulk = h.record(
        Row(
            f"replay baseline: Elasticsearch raw _bulk of the documents ({n})",
            bulked["events_per_second"],
            "events/s",
            details=bulked,
            label="raw _bulk",
        )
    )
    # Issue 7 states its replay ratios as events replayed per second over rows (documents) written
    # per second by COPY (_bulk), so those baselines are printed too; the rows above count each
    # baseline in the events its rows stand for (4 per product), the stricter comparison.
    copy_rows_rate = h.record(
        Row(
            f"replay baseline: PostgreSQL COPY of the final rows ({copied['rows']:,.0f} rows)",
            copied["rows_per_second"],
            "rows/s",
            label="COPY rows/s",
        )
    )
    bulk_docs_rate = h.record(
        Row(
            f"replay baseline: Elasticsearch raw _bulk ({bulked['documents']:,.0f} documents)",
            bulked["docs_per_second"],
            "docs/s",
            label="_bulk docs/s",
        )
    )
    one_by_one = h.record(
        Row(
            f"replay baseline: naive projector, a transaction per event ({naive['events']:,.0f} events)",
            naive["events_per_second"],
            "events/s",
            details=naive,
            label="naive projector",
        )
    )
    postgres = Row(
        f"catalog rebuild into PostgreSQL ({n})", rates.postgres, "events/s", target=">= 0.2x COPY"
    )
    h.record(postgres.compared_with(copy))
    h.record(
        Row(
            f"catalog rebuild into PostgreSQL ({n})", rates.postgres, "events/s", target=">= 0.2x"
        ).compared_with(copy_rows_rate)
    )
    h.record(
        Row(f"catalog rebuild into PostgreSQL ({n})", rates.postgres, "events/s").compared_with(one_by_one)
    )
    h.record(
        Row(
            f"catalog rebuild into Elasticsearch ({n})",
            rates.elasticsearch,
            "events/s",
            target=">= 0.6x _bulk",
        ).compared_with(bulk)
    )
    h.record(
        Row(
            f"catalog rebuild into Elasticsearch ({n})", rates.elasticsearch, "events/s", target=">= 0.6x"
        ).compared_with(bulk_docs_rate)
    )


async def orders(h: Harness) -> None:
    """POST /orders -> OrderConfirmed committed in Kafka and read by the bench (before the orders read
    model shows it: see bench/order_confirmation.py), CUSTOMERS customers at a time."""
    services, ordering = await h.services(), await h.order_services()
    deployment = services.deployment
    partitions = deployment.settings.kafka_partitions
    products = await create_order_products(services.catalog_url, services.admin_token, 2 * partitions)
    h.say(f"waiting until the orders side's replica of the catalog has the {len(products)} products")
    await wait_until_replicated(deployment.database_url("orders"), products, within=300)
    topic = topics.in_namespace(deployment.namespace, topics.ORDERS)
    count = h.size.orders
    async with OrderDecisions(h.servers.kafka_bootstrap, topic, partitions) as decisions:
        # The first orders also wait for the saga to join its group: not measured.
        h.say(f"warm-up: {2 * CUSTOMERS} orders, {CUSTOMERS} customers at a time")
        warmup = await place_orders(
            ordering.orders_url, ordering.customer_token, products, decisions, 2 * CUSTOMERS, CUSTOMERS
        )
        if warmup.confirmed == 0:
            raise RuntimeError(f"no warm-up order was confirmed; the first failure: {warmup.first_failure}")
        h.note_started(ordering.saga)
        h.say(f"{count:,} orders over {len(products)} products, {CUSTOMERS} customers at a time")
        run = await place_orders(
            ordering.orders_url, ordering.customer_token, products, decisions, count, CUSTOMERS
        )
    if run.confirmed == 0:
        raise RuntimeError(f"no order was confirmed; the first failure: {run.first_failure}")
    if run.failures:
        h.say(f"{run.failures} of {count:,} orders failed; the first: {run.first_failure}")
    details = {
        "orders": float(count),
        "confirmed": float(run.confirmed),
        "rejected": float(run.rejected),
        "failures": float(run.failures),
        "seconds": run.seconds,
        "customers_in_flight": float(CUSTOMERS),
        "products": float(len(products)),
        "catalog_partitions": float(len({product % ID_STRIDE for product in products})),
        "place_order_p50_ms": percentile(run.command_ms, 0.5),
        "place_order_p99_ms": percentile(run.command_ms, 0.99),
        "place_order_max_ms": max(run.command_ms),
    }
    for start, samples in (("answered", run.after_answer_ms), ("sent", run.after_send_ms)):
        h.record(
            Row(
                f"order POST /orders {start} -> OrderConfirmed read, {CUSTOMERS} customers ({count:,} orders)",
                run.confirmed / run.seconds,
                "orders/s",
                percentile(samples, 0.5),
                percentile(samples, 0.99),
                errors=run.failures,
                details=details,
                max_ms=max(samples),
            )
        )


async def memory(h: Harness) -> None:
    for row in h.memory_rows():
        h.record(row)


async def cold_start(h: Harness) -> None:
    """A command side's start on a long log: on an empty disk from its partitions' checkpoints (a new
    owner), and with its own disk (a restart), beside folding the whole log."""
    events = h.size.cold_start_events
    h.say(f"cold start of the catalog's command side on {events:,} events")
    times = await cold_start_times(events, h.servers.kafka_bootstrap, progress=h.say)
    n = f"{times.events:,} events, {times.aggregates:,} products"
    replayed = h.record(
        Row(
            f"cold start baseline: fold the whole log ({n})",
            times.full_replay_seconds,
            "s",
            label="full replay",
        )
    )
    h.record(
        Row(
            f"start on an empty disk, from checkpoints ({n})",
            times.from_checkpoints_seconds,
            "s",
            target="<= 5 s on 1M events",
        ).compared_with(replayed)
    )
    h.record(
        Row(
            f"restart with its disk ({n})",
            times.from_disk_seconds,
            "s",
            target="<= 3 s",
        ).compared_with(replayed)
    )


async def state(h: Harness) -> None:
    """A command side's memory and start times as its store grows, the hand-over to an empty disk,
    and commands on a hot and on a cold working set (bench/state_scale.py)."""
    size = h.size.state_aggregates
    h.say(f"the catalog's command side on up to {size:,} products")
    scale = await state_scale(size, h.servers.kafka_bootstrap, h.size.state_commands, progress=h.say)
    for products, figures in scale.by_size.items():
        h.record(
            Row(
                f"catalog writer owning every partition, {products:,} products in its store: peak RSS",
                figures["rss_peak_mib"],
                "MiB",
                target="<= 300 MiB at 10,000,000",
                details={
                    "settled_rss_mib": figures["rss_ready_mib"],
                    "ready_seconds": figures["ready_seconds"],
                },
            )
        )
    h.record(
        Row(
            f"hand-over: an empty disk until every partition answers ({size:,} products)",
            scale.empty_disk["ready_seconds"],
            "s",
            target="<= 15 s at 10,000,000",
            details={"rss_peak_mib": scale.empty_disk["rss_peak_mib"]},
        )
    )
    h.record(
        Row(
            f"restart with its disk ({size:,} products)",
            scale.own_disk["ready_seconds"],
            "s",
            target="<= 3 s at 10,000,000",
        )
    )
    own = scale.own_disk
    hot = h.record(
        Row(
            "stock adjustments @64, hot working set (1,000 products, cached)",
            own["hot_commands_per_second"],
            "commands/s",
            p50_ms=own["hot_p50_ms"],
            p99_ms=own["hot_p99_ms"],
            label="hot",
        )
    )
    h.record(
        Row(
            f"stock adjustments @64, cold working set (none cached, {size:,} products)",
            own["cold_commands_per_second"],
            "commands/s",
            p50_ms=own["cold_p50_ms"],
            p99_ms=own["cold_p99_ms"],
            target="p99 <= 20 ms",
        ).compared_with(hot)
    )


async def soak(h: Harness) -> None:
    """The command side's RSS under a steady stream of new aggregates (bench/soak.py)."""
    run = await soak_run(h.size.soak_minutes, 200, h.servers.kafka_bootstrap, progress=h.say)
    settled = run.after_warmup
    h.record(
        Row(
            f"catalog writer, {run.rate:g} new products/s for {run.minutes:g} min: RSS growth after the warm-up",
            run.growth_mib,
            "MiB",
            target="flat",
            details={
                "commands": float(run.commands),
                "rss_after_warmup_mib": settled[0],
                "rss_at_end_mib": settled[-1],
                "rss_max_mib": max(rss for _, rss in run.samples),
            },
        )
    )


def page_load_row(figure: str, loads: PageLoads, target: str = "", label: str = "") -> Row:
    """Milliseconds until the product list is shown: the row's value is the median."""
    shown = loads.shown_ms
    return Row(
        figure,
        statistics.median(shown),
        "ms",
        p50_ms=statistics.median(shown),
        p99_ms=percentile(shown, 0.99),
        max_ms=max(shown),
        target=target,
        label=label,
        details={
            "loads": len(shown),
            "dom_content_loaded_p50_ms": statistics.median(loads.dom_ready_ms),
        },
    )


async def storefront(h: Harness) -> None:
    """The storefront's first page in Chromium through the edge: idle, then while wrk sends the search
    load (rotating terms, 16 connections) through the same edge."""
    services, _ = await h.services(), await h.product_ids()
    edge = await h.edge()
    page = f"{edge.url}/"
    h.say(f"storefront page load in Chromium through the edge, idle ({h.size.page_loads} loads)")
    idle = await asyncio.to_thread(page_loads, page, h.size.page_loads)
    idle_row = h.record(page_load_row("storefront page load, product list shown (idle)", idle, label="idle"))
    paths = [f"/products?search={quote(term)}&limit=20" for term in SEARCH_TERMS]
    script = h.script("search-through-edge", "rotate_paths.lua", {"paths": paths})
    h.say("what the edge costs: the search load straight to the catalog gateway, then through the edge")
    direct = h.record(
        wrk_row(
            "catalog search straight to the gateway @16",
            await h.load(services.catalog_url, 16, script),
            label="direct",
        )
    )
    h.record(
        wrk_row("catalog search through the edge @16", await h.load(edge.url, 16, script)).compared_with(
            direct
        )
    )
    h.say("the page loads while wrk sends the search load through the edge at 16 connections")
    # wrk runs longer than the loads can take, so that every load is under load.
    load = asyncio.create_task(run_wrk(edge.url, 16, max(h.size.seconds, 4 + h.size.page_loads), script))
    await asyncio.sleep(1)  # wrk's connections are open and busy
    loaded = await asyncio.to_thread(page_loads, page, h.size.page_loads)
    result = await load
    h.record(
        page_load_row(
            "storefront page load, product list shown, under search load @16 through the edge",
            loaded,
            target="<= 1 s",
        ).compared_with(idle_row)
    )
    h.record(wrk_row("catalog search through the edge @16 (during the page loads)", result))


async def chaos(h: Harness) -> None:
    """Money under chaos (bench/chaos.py): purchases, declines and retries, cancels, expiries, late
    payments and refunds while the saga and a payments instance are killed at random; then the books."""
    deployment = await h.own_deployment("chaos", order_payment_window_seconds=PAYMENT_WINDOW_SECONDS)
    stack = await asyncio.to_thread(start_chaos_stack, deployment)
    h.stack.callback(stack.stop)
    seconds, shoppers = (20.0, 6) if h.size.quick else (300.0, 16)
    h.say(f"chaos: {seconds:.0f} s of shopping, {shoppers} customers at a time, with kills")
    tally, books = await asyncio.to_thread(run_chaos, stack, seconds, shoppers, 17)
    report(tally, books, h.say)
    details = {name: float(value) for name, value in {**tally.counts, **books.counts}.items()}
    h.record(
        Row(
            "chaos: orders whose money and units balance",
            float(books.counts["orders"]) if books.balanced else 0.0,
            "orders",
            target="every order paid or refunded as its status says; 0 = a violation (see the log)",
            details=details | {"violations": float(len(books.violations))},
        )
    )
    if not books.balanced:
        raise RuntimeError("the books do not balance:\n" + "\n".join(books.violations))


SCENARIOS: dict[str, Callable[[Harness], Awaitable[None]]] = {
    "trivial": trivial,
    "health": health,
    "product": product,
    "validate": validate,
    "login": login,
    "search": search,
    "create": create,
    "adjust": adjust,
    "own-writes": own_writes,
    "lag": lag,
    "eventstore": eventstore,
    "replay": replay,
    "cold-start": cold_start,
    "state": state,
    "soak": soak,
    "storefront": storefront,
    "orders": orders,
    "chaos": chaos,
    "platform": platform,
    "memory": memory,
}
