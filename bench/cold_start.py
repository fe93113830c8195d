"""Starts of a command side on a long log, until every partition is ready: with the whole log folded
into an empty store (the baseline), from the partitions' checkpoints on an empty disk (a hand-over to
a new instance), and from its own store on disk (a restart).

    python -m bench.cold_start [--events 1000000]

Writes the events (four per product) into a throwaway namespace, starts a catalog event store with an
empty disk and no checkpoints, then one that folds the log and writes checkpoints, then one with
another empty disk that starts from them, then that one again with its disk. Needs the local stack.
`cold_start_times` gives the same figures to `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.catalog_replay import write_log
from bench.throwaway import delete_namespace_topics
from command_api.catalog.domain import PRODUCT
from command_api.eventstore.checkpoints import MANIFEST_KEY
from command_api.eventstore.kafka_store import KafkaEventStore
from config.process import tune_garbage_collector
from config.settings import Settings
from event_schemas.registry import REGISTRY
from event_schemas.topics import CATALOG, checkpoints, in_namespace
from infra.topics import ensure_topics


@dataclass(frozen=True)
class ColdStarts:
    events: int
    aggregates: int
    full_replay_seconds: float  # the baseline
    from_checkpoints_seconds: float  # an empty disk: a new owner
    from_disk_seconds: float  # the same instance again


def catalog_store(
    bootstrap_servers: str,
    topic: str,
    name: str,
    checkpoint_key: bytes | None,
    state_dir: Path,
    checkpoint_every: int = 20_000,
) -> KafkaEventStore:
    """The catalog's event store as a benchmark runs it: one instance, named `name`, owning every
    partition, its stores in `state_dir`."""
    return KafkaEventStore(
        bootstrap_servers=bootstrap_servers,
        topic=topic,
        group=f"{topic}-{name}",
        instance_url=f"http://bench-{name}",
        kinds=[PRODUCT],
        registry=REGISTRY,
        timeout=10,
        checkpoint_key=checkpoint_key,
        checkpoint_every=checkpoint_every,
        state_dir=state_dir,
    )


async def ready_after(settings: Settings, topic: str, checkpoint_key: bytes | None, state_dir: Path) -> float:
    """Seconds from creating an event store to every partition caught up and ready."""
    store = catalog_store(
        settings.kafka_bootstrap_servers,
        topic,
        f"cold-start-{uuid.uuid4().hex[:6]}",
        checkpoint_key,
        state_dir,
        checkpoint_every=1,  # checkpoint right after the catch-up, for the next start
    )
    started = time.perf_counter()
    await store.start()
    try:
        await store.wait_until_ready(within=600)
        took = time.perf_counter() - started
        assert len(store.ready_partitions()) == settings.kafka_partitions, "every partition ready"
        if checkpoint_key is not None:
            await checkpoints_written(settings, topic)
        return took
    finally:
        await store.stop()


async def checkpoints_written(settings: Settings, topic: str, within: float = 300) -> None:
    """Until every partition's last checkpoint record is a manifest."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        partitions = [TopicPartition(checkpoints(topic), p) for p in range(settings.kafka_partitions)]
        while time.monotonic() < deadline:
            if checkpoints(topic) in await consumer.topics() and await _all_end_in_a_manifest(
                consumer, partitions
            ):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the checkpoints of {topic} were not written within {within}s")
    finally:
        await consumer.stop()


async def _all_end_in_a_manifest(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        if ends[tp] == 0:
            return False
        consumer.seek(tp, ends[tp] - 1)
        records = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
        if not records or records[-1].key != MANIFEST_KEY:
            return False
    return True


async def cold_start_times(
    events: int, bootstrap_servers: str, progress: Callable[[str], None] = print
) -> ColdStarts:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(namespace=namespace, kafka_bootstrap_servers=bootstrap_servers)
    topic = in_namespace(namespace, CATALOG)
    key = secrets.token_bytes(32)
    disks = tempfile.TemporaryDirectory(prefix="bench-cold-start-")
    try:
        await ensure_topics(settings)
        products = events // 4
        started = time.perf_counter()
        written = await write_log(settings, topic, products)
        progress(
            f"wrote {written:,} product events ({products:,} products) in {time.perf_counter() - started:.1f}s"
        )
        disk = Path(disks.name)
        full = await ready_after(settings, topic, None, disk / "baseline")
        progress(f"cold start folding the whole log: {full:.2f}s")
        writing = await ready_after(settings, topic, key, disk / "first")
        progress(f"cold start folding the log and writing checkpoints: {writing:.2f}s")
        from_checkpoints = await ready_after(settings, topic, key, disk / "second")
        progress(f"start on an empty disk, from the checkpoints: {from_checkpoints:.2f}s")
        from_disk = await ready_after(settings, topic, key, disk / "second")
        progress(f"restart with its disk: {from_disk:.2f}s")
        return ColdStarts(written, products, full, from_checkpoints, from_disk)
    finally:
        disks.cleanup()
        await delete_namespace_topics(bootstrap_servers, [namespace])


async def main(events: int) -> None:
    times = await cold_start_times(events, Settings().kafka_bootstrap_servers)
    print(f"{'baseline: fold the whole log':<40} {times.full_replay_seconds:>7.2f} s")
    for name, seconds in (
        ("empty disk, from checkpoints", times.from_checkpoints_seconds),
        ("restart with its disk", times.from_disk_seconds),
    ):
        print(f"{name:<40} {seconds:>7.2f} s  ratio {seconds / times.full_replay_seconds:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start")
    parser.add_argument("--events", type=int, default=1_000_000)
    arguments = parser.parse_args()
    tune_garbage_collector()  # as the services do
    asyncio.run(main(arguments.events))
