"""A command side's memory and start times as its partitions grow: the catalog's writers on 1/10,
3/10 and all of N products (10,000,000 in the full bench), each product one aggregate.

    python -m bench.state_scale [--aggregates 10000000]

Writes the products' creations with a plain producer into a throwaway namespace (the events go
through the event schema once and are stamped per product, to keep the setup short), then starts a
catalog event store, in a process of its own so its memory is its own, owning every partition:

- at each size, with the same disk (so it folds only what was added): peak and settled RSS;
- at the full size, the hand-over: an instance with an empty disk until every partition answers
  (it starts from the checkpoints the first one wrote), then that instance again with its disk;
- commands on that instance at 64 in flight, on a hot working set (1,000 products, all cached) and a
  cold one (every command on a product not in the cache).

`state_scale` gives the same figures to `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.cold_start import catalog_store
from bench.throwaway import delete_namespace_topics
from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT
from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.eventstore.model import CommandContext
from command_api.eventstore.partitioning import ID_STRIDE
from config.process import tune_garbage_collector
from config.settings import Settings
from event_schemas.catalog import ProductCreated
from event_schemas.money import Money
from event_schemas.registry import REGISTRY
from event_schemas.topics import CATALOG, in_namespace
from infra.topics import ensure_topics

IN_FLIGHT = 64
HOT_PRODUCTS = 1_000
_ID, _EVENT = 123456789, "00000000-0000-4000-8000-000000000000"


def product_id(n: int, partitions: int) -> int:
    """The nth product (from 0) as the writers number them: spread over the partitions in turn."""
    return (n // partitions + 1) * ID_STRIDE + n % partitions


async def write_products(bootstrap: str, topic: str, partitions: int, first: int, last: int) -> None:
    """Products [first, last), each a ProductCreated, in its partition."""
    stamped = ProductCreated(
        aggregate_id=f"product-{_ID}",
        aggregate_version=1,
        event_id=uuid.UUID(_EVENT),
        occurred_at=datetime.now(UTC),
        product_id=_ID,
        name=f"Product {_ID} wireless gadget",
        description="A dependable gadget for everyday use",
        price=Money(amount=Decimal("19.99")),
        stock=1_000_000,
    )
    template, headers = REGISTRY.to_bytes(stamped).decode(), REGISTRY.headers(stamped)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        pending = []
        for n in range(first, last):
            number = product_id(n, partitions)
            value = template.replace(str(_ID), str(number)).replace(_EVENT, str(uuid.uuid4())).encode()
            pending.append(
                await producer.send(
                    topic, value, key=f"product-{number}".encode(), partition=n % partitions, headers=headers
                )
            )
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


# the instance, in a process of its own


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident set (VmHWM: its peak), in MiB. Not getrusage's ru_maxrss, which Linux
    carries over an exec from the forking parent (the bench's own, larger, process)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024


async def serve(options: argparse.Namespace, checkpoint_key: bytes) -> dict[str, float]:
    """Start the catalog's event store owning every partition; time it until ready; checkpoint it;
    optionally run commands. Prints what it measured as one JSON line."""
    store = catalog_store(
        options.bootstrap, options.topic, "state-scale", checkpoint_key, Path(options.state_dir)
    )
    figures: dict[str, float] = {}
    started = time.perf_counter()
    await store.start()
    try:
        await store.wait_until_ready(within=3600)
        figures["ready_seconds"] = time.perf_counter() - started
        assert len(store.ready_partitions()) == options.partitions, "every partition ready"
        figures["rss_ready_mib"] = rss_mib()
        if options.checkpoint:
            checkpointing = time.perf_counter()
            await store.checkpoint_all()
            figures["checkpoint_seconds"] = time.perf_counter() - checkpointing
        if options.commands:
            hot = [product_id(n, options.partitions) for n in range(HOT_PRODUCTS)]
            figures |= await commands(store, "hot", lambda: random.choice(hot), options.commands)
            cold = random.sample(range(HOT_PRODUCTS, options.aggregates), options.commands)
            figures |= await commands(
                store, "cold", lambda: product_id(cold.pop(), options.partitions), options.commands
            )
        figures["rss_end_mib"] = rss_mib()
    finally:
        await store.stop()
    # The kernel updates the high-water mark lazily: it may lag a sample taken since.
    figures["rss_peak_mib"] = max(rss_mib("VmHWM"), figures["rss_ready_mib"], figures["rss_end_mib"])
    return figures


async def commands(
    store: KafkaEventStore, name: str, pick: Callable[[], int], total: int
) -> dict[str, float]:
    """`total` stock adjustments, `IN_FLIGHT` at a time: commands/s and p99 latency."""
    latencies: list[float] = []
    now = datetime.now(UTC)

    async def one() -> None:
        aggregate = f"product-{pick()}"
        begun = time.perf_counter()
        await store.execute(
            PRODUCT,
            aggregate,
            lambda product: domain.adjust_stock(product, delta=-1, reason="count", now=now),
            CommandContext(),
        )
        latencies.append(time.perf_counter() - begun)

    async def worker(share: int) -> None:
        for _ in range(share):
            await one()

    began = time.perf_counter()
    await asyncio.gather(*(worker(total // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    took = time.perf_counter() - began
    latencies.sort()
    return {
        f"{name}_commands_per_second": len(latencies) / took,
        f"{name}_p50_ms": latencies[len(latencies) // 2] * 1000,
        f"{name}_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


# the scenario


@dataclass
class StateScale:
    aggregates: int
    # aggregates in the log -> what the instance with the same disk measured after folding up to it
    by_size: dict[int, dict[str, float]] = field(default_factory=dict)
    write_seconds: float = 0.0
    empty_disk: dict[str, float] = field(default_factory=dict)  # the hand-over
    own_disk: dict[str, float] = field(default_factory=dict)  # a restart, then the commands


def run_instance(
    settings: Settings,
    topic: str,
    state_dir: Path,
    key_file: Path,
    aggregates: int,
    *,
    checkpoint: bool,
    commands: int,
) -> dict[str, float]:
    arguments = [
        sys.executable,
        "-m",
        "bench.state_scale",
        "serve",
        f"--bootstrap={settings.kafka_bootstrap_servers}",
        f"--topic={topic}",
        f"--partitions={settings.kafka_partitions}",
        f"--state-dir={state_dir}",
        f"--key-file={key_file}",
        f"--aggregates={aggregates}",
        f"--commands={commands}",
        *(["--checkpoint"] if checkpoint else []),
    ]
    done = subprocess.run(arguments, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


async def state_scale(
    aggregates: int, bootstrap_servers: str, commands: int, progress: Callable[[str], None] = print
) -> StateScale:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(namespace=namespace, kafka_bootstrap_servers=bootstrap_servers)
    topic = in_namespace(namespace, CATALOG)
    result = StateScale(aggregates)
    with tempfile.TemporaryDirectory(prefix="bench-state-") as work:
        disks = Path(work)
        key_file = disks / "checkpoint.key"
        key_file.write_bytes(secrets.token_bytes(32))
        try:
            await ensure_topics(settings)
            written = 0
            for size in sorted({max(aggregates // 10, 1), max(aggregates * 3 // 10, 1), aggregates}):
                began = time.perf_counter()
                await write_products(bootstrap_servers, topic, settings.kafka_partitions, written, size)
                result.write_seconds += time.perf_counter() - began
                written = size
                last = size == aggregates
                figures = run_instance(
                    settings, topic, disks / "first", key_file, size, checkpoint=last, commands=0
                )
                result.by_size[size] = figures
                progress(
                    f"{size:,} products: ready in {figures['ready_seconds']:.1f}s with its disk, "
                    f"RSS peak {figures['rss_peak_mib']:.0f} MiB, settled {figures['rss_ready_mib']:.0f} MiB"
                )
            result.empty_disk = run_instance(
                settings, topic, disks / "second", key_file, aggregates, checkpoint=False, commands=0
            )
            progress(f"hand-over to an empty disk: ready in {result.empty_disk['ready_seconds']:.1f}s")
            result.own_disk = run_instance(
                settings, topic, disks / "second", key_file, aggregates, checkpoint=False, commands=commands
            )
            progress(
                f"restart with its disk: ready in {result.own_disk['ready_seconds']:.1f}s; "
                f"cold commands p99 {result.own_disk['cold_p99_ms']:.1f} ms"
            )
        finally:
            await delete_namespace_topics(bootstrap_servers, [namespace])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.state_scale")
    sub = parser.add_subparsers(dest="command")
    instance = sub.add_parser("serve", help="(internal) one instance, measured")
    instance.add_argument("--bootstrap", required=True)
    instance.add_argument("--topic", required=True)
    instance.add_argument("--partitions", type=int, required=True)
    instance.add_argument("--state-dir", required=True)
    instance.add_argument("--key-file", required=True)
    instance.add_argument("--aggregates", type=int, required=True)
    instance.add_argument("--commands", type=int, default=0)
    instance.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--aggregates", type=int, default=10_000_000)
    parser.add_argument("--commands", type=int, default=6_400)
    options = parser.parse_args()
    tune_garbage_collector()  # as the services do
    if options.command == "serve":
        key = Path(options.key_file).read_bytes()
        print(json.dumps(asyncio.run(serve(options, key))), flush=True)
        return
    scale = asyncio.run(state_scale(options.aggregates, Settings().kafka_bootstrap_servers, options.commands))
    print(json.dumps(scale.__dict__, indent=2, default=str))


if __name__ == "__main__":
    main()
