"""A command side's memory under a long run: the catalog's event store, owning every partition on a
disk of its own, creating products at a steady rate (every command a new aggregate), its RSS sampled
as it goes. What is flat after the warm-up does not grow with the shop.

    python -m bench.soak [--minutes 10] [--rate 200]

The instance runs in a process of its own, so its memory is its own. `soak` gives the same figures to
`python -m bench --only soak --minutes N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.cold_start import catalog_store
from bench.state_scale import rss_mib
from bench.throwaway import delete_namespace_topics
from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT
from command_api.eventstore.model import CommandContext
from config.process import tune_garbage_collector
from config.settings import Settings
from event_schemas.money import Money
from event_schemas.topics import CATALOG, in_namespace
from infra.topics import ensure_topics

SAMPLE_EVERY_SECONDS = 10.0
IN_FLIGHT = 16


@dataclass(frozen=True)
class Soak:
    minutes: float
    rate: float  # asked for, commands/s
    commands: int  # done
    samples: list[tuple[float, float]]  # (seconds since the start, RSS MiB)

    @property
    def after_warmup(self) -> list[float]:
        """RSS in the second half of the run (the first fills the writers' caches)."""
        cut = self.minutes * 60 / 2
        return [rss for at, rss in self.samples if at >= cut] or [self.samples[-1][1]]

    @property
    def growth_mib(self) -> float:
        """RSS at the end minus RSS at the end of the warm-up."""
        settled = self.after_warmup
        return settled[-1] - settled[0]


async def run(options: argparse.Namespace, checkpoint_key: bytes) -> dict[str, object]:
    store = catalog_store(options.bootstrap, options.topic, "soak", checkpoint_key, Path(options.state_dir))
    await store.start()
    samples: list[tuple[float, float]] = []
    done = 0
    try:
        await store.wait_until_ready(within=120)
        began = time.monotonic()
        ends = began + options.minutes * 60
        interval = 1 / options.rate
        next_sample = began
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def create(n: int) -> None:
            nonlocal done
            try:
                await store.create(
                    PRODUCT,
                    lambda product: domain.create(
                        product,
                        name=f"Soak product {n}",
                        description="Made by the soak",
                        price=Money(amount=Decimal("9.99")),
                        stock=10,
                        now=datetime.now(UTC),
                    ),
                    CommandContext(idempotency_key=uuid.uuid4().hex),
                )
                done += 1
            finally:
                slots.release()

        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while (now := time.monotonic()) < ends:
            if now >= next_sample:
                samples.append((now - began, rss_mib()))
                next_sample += SAMPLE_EVERY_SECONDS
            await slots.acquire()
            task = asyncio.create_task(create(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, began + n * interval - time.monotonic()))
        await asyncio.gather(*tasks)
        samples.append((time.monotonic() - began, rss_mib()))
    finally:
        await store.stop()
    return {"commands": done, "samples": samples}


async def soak(
    minutes: float, rate: float, bootstrap_servers: str, progress: Callable[[str], None] = print
) -> Soak:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(namespace=namespace, kafka_bootstrap_servers=bootstrap_servers)
    topic = in_namespace(namespace, CATALOG)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as work:
        key_file = Path(work) / "checkpoint.key"
        key_file.write_bytes(secrets.token_bytes(32))
        try:
            await ensure_topics(settings)
            progress(
                f"soak: {rate:g} new products/s for {minutes:g} min, RSS every {SAMPLE_EVERY_SECONDS:g} s"
            )
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "bench.soak",
                    "serve",
                    f"--bootstrap={bootstrap_servers}",
                    f"--topic={topic}",
                    f"--state-dir={Path(work) / 'state'}",
                    f"--key-file={key_file}",
                    f"--minutes={minutes}",
                    f"--rate={rate}",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        finally:
            await delete_namespace_topics(bootstrap_servers, [namespace])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    samples = [(float(at), float(rss)) for at, rss in figures["samples"]]
    return Soak(minutes, rate, int(figures["commands"]), samples)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    sub = parser.add_subparsers(dest="command")
    instance = sub.add_parser("serve", help="(internal) the instance under the soak")
    instance.add_argument("--bootstrap", required=True)
    instance.add_argument("--topic", required=True)
    instance.add_argument("--state-dir", required=True)
    instance.add_argument("--key-file", required=True)
    instance.add_argument("--minutes", type=float, required=True)
    instance.add_argument("--rate", type=float, required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200)
    options = parser.parse_args()
    tune_garbage_collector()  # as the services do
    if options.command == "serve":
        key = Path(options.key_file).read_bytes()
        print(json.dumps(asyncio.run(run(options, key))), flush=True)
        return
    result = asyncio.run(soak(options.minutes, options.rate, Settings().kafka_bootstrap_servers))
    for at, rss in result.samples:
        print(f"{at:7.0f} s  {rss:7.1f} MiB")
    print(f"{result.commands:,} commands; RSS growth after the warm-up: {result.growth_mib:+.1f} MiB")


if __name__ == "__main__":
    main()
