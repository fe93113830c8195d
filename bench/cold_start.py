"""Cold start of a command side: from nothing in memory to every partition ready, on a long log, with
the whole log replayed (the baseline) and from the partitions' snapshots.

    python -m bench.cold_start [--events 1000000]

Writes the events (four per product) into a throwaway namespace, starts a catalog event store
without snapshots, then one that writes them, then a third, cold, that starts from them. Needs the
local stack. `cold_start_times` gives the same figures to `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.catalog_replay import write_log
from bench.throwaway import delete_namespace_topics
from command_api.catalog.domain import PRODUCT
from command_api.eventstore.kafka_store import KafkaEventStore
from config.process import tune_garbage_collector
from config.settings import Settings
from event_schemas.registry import REGISTRY
from event_schemas.topics import CATALOG, in_namespace, snapshots
from infra.topics import ensure_topics


@dataclass(frozen=True)
class ColdStarts:
    events: int
    aggregates: int
    full_replay_seconds: float  # the baseline
    from_snapshots_seconds: float


async def ready_after(settings: Settings, topic: str, snapshot_key: bytes | None) -> float:
    """Seconds from creating an event store to every partition caught up and ready."""
    store = KafkaEventStore(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=topic,
        group=f"{topic}-cold-start-{uuid.uuid4().hex[:6]}",
        instance_url="http://bench-cold-start",
        kinds=[PRODUCT],
        registry=REGISTRY,
        timeout=10,
        snapshot_key=snapshot_key,
        snapshot_every=1,  # snapshot right after the catch-up, for the next start
    )
    started = time.perf_counter()
    await store.start()
    try:
        await store.wait_until_ready(within=600)
        took = time.perf_counter() - started
        assert len(store.ready_partitions()) == settings.kafka_partitions, "every partition ready"
        if snapshot_key is not None:
            await snapshots_written(settings, topic)
        return took
    finally:
        await store.stop()


async def snapshots_written(settings: Settings, topic: str, within: float = 120) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        partitions = [TopicPartition(snapshots(topic), p) for p in range(settings.kafka_partitions)]
        while time.monotonic() < deadline:
            if snapshots(topic) in await consumer.topics():
                ends = await consumer.end_offsets(partitions)
                if all(ends.values()):
                    return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the snapshots of {topic} were not written within {within}s")
    finally:
        await consumer.stop()


async def cold_start_times(
    events: int, bootstrap_servers: str, progress: Callable[[str], None] = print
) -> ColdStarts:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(namespace=namespace, kafka_bootstrap_servers=bootstrap_servers)
    topic = in_namespace(namespace, CATALOG)
    key = secrets.token_bytes(32)
    try:
        await ensure_topics(settings)
        products = events // 4
        started = time.perf_counter()
        written = await write_log(settings, topic, products)
        progress(
            f"wrote {written:,} product events ({products:,} products) in {time.perf_counter() - started:.1f}s"
        )
        full = await ready_after(settings, topic, None)
        progress(f"cold start replaying the whole log: {full:.2f}s")
        writing = await ready_after(settings, topic, key)
        progress(f"cold start replaying the log and writing snapshots: {writing:.2f}s")
        from_snapshots = await ready_after(settings, topic, key)
        progress(f"cold start from snapshots: {from_snapshots:.2f}s")
        return ColdStarts(written, products, full, from_snapshots)
    finally:
        await delete_namespace_topics(bootstrap_servers, [namespace])


async def main(events: int) -> None:
    times = await cold_start_times(events, Settings().kafka_bootstrap_servers)
    print(f"{'baseline: replay the whole log':<40} {times.full_replay_seconds:>7.2f} s")
    print(
        f"{'from snapshots':<40} {times.from_snapshots_seconds:>7.2f} s  "
        f"ratio {times.from_snapshots_seconds / times.full_replay_seconds:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start")
    parser.add_argument("--events", type=int, default=1_000_000)
    arguments = parser.parse_args()
    tune_garbage_collector()  # as the services do
    asyncio.run(main(arguments.events))
