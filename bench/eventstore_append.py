"""Append throughput and latency of the Kafka event store, beside a plain producer as the baseline.

    python -m bench.eventstore_append [--commands 2000] [--concurrency 1 16 64]

The event store does per-partition fencing, a decision against folded state and one Kafka
transaction per command; the baseline sends the same records with an idempotent producer
(acks=all, no transaction, no decision). Needs Kafka (`infra/stack.sh up kafka`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.eventstore.model import CommandContext, Loaded
from command_api.users import domain
from command_api.users.domain import USER, UserState, user_aggregate_id
from config.settings import Settings
from event_schemas import topics
from event_schemas.registry import REGISTRY
from infra.topics import ensure_topics

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


async def measure(name: str, commands: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    latencies: list[float] = []
    queue = iter(range(commands))

    async def worker() -> None:
        for index in queue:
            started = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    rate = commands / elapsed
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"{name:<28} concurrency {concurrency:>3}: {rate:8.0f} commands/s  "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"
    )
    return rate


async def main(commands: int, levels: list[int]) -> None:
    settings = Settings(namespace=f"bench{uuid.uuid4().hex[:8]}")
    baseline_settings = Settings(namespace=f"{settings.namespace}base")
    await ensure_topics(settings)
    await ensure_topics(baseline_settings)
    topic = topics.in_namespace(settings.namespace, topics.USERS)
    baseline_topic = topics.in_namespace(baseline_settings.namespace, topics.USERS)
    store = KafkaEventStore(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=topic,
        group=topics.in_namespace(settings.namespace, "users-command"),
        instance_url="http://bench",
        kinds=[USER],
        registry=REGISTRY,
        timeout=settings.command_timeout_seconds,
    )
    await store.start()
    await store.wait_until_ready(within=60)
    baseline = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await baseline.start()
    now = datetime.now(UTC)
    try:
        for concurrency in levels:
            run_id = uuid.uuid4().hex[:6]

            async def register(index: int, run_id: str = run_id) -> None:
                email = f"bench-{run_id}-{index}@example.com"
                await store.execute(
                    USER,
                    user_aggregate_id(email),
                    lambda user: domain.register(
                        user, username="bench", email=email, password_hash=HASH, role="customer", now=now
                    ),
                    CommandContext(),
                )

            async def send(index: int, run_id: str = run_id) -> None:
                email = f"base-{run_id}-{index}@example.com"
                event = domain.register(
                    store_view(email),
                    username="bench",
                    email=email,
                    password_hash=HASH,
                    role="customer",
                    now=now,
                )[0]
                await baseline.send_and_wait(
                    baseline_topic,
                    value=REGISTRY.to_bytes(event),
                    key=event.aggregate_id.encode(),
                    headers=REGISTRY.headers(event),
                )

            ours = await measure("event store (transactional)", commands, concurrency, register)
            theirs = await measure("baseline (plain producer)", commands, concurrency, send)
            print(f"{'':<28} ratio event store / baseline: {ours / theirs:.2f}")
    finally:
        await baseline.stop()
        await store.stop()


def store_view(email: str) -> Loaded[UserState]:
    return Loaded(user_aggregate_id(email), USER.initial, 0, next_numeric_id=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.eventstore_append")
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    arguments = parser.parse_args()
    asyncio.run(main(arguments.commands, arguments.concurrency))
