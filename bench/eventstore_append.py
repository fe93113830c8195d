"""Append throughput and latency of the Kafka event store, beside a plain producer as the baseline.

    python -m bench.eventstore_append [--commands 2000] [--concurrency 1 16 64]

The event store does per-partition fencing, a decision against folded state and one Kafka
transaction per command; the baseline sends the same records with an idempotent producer
(acks=all, no transaction, no decision). Needs Kafka (`infra/stack.sh up kafka`).
`compare_appends` gives the same figures to `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from bench.throwaway import delete_namespace_topics
from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.eventstore.model import CommandContext, Loaded
from command_api.users import domain
from command_api.users.domain import USER, UserState, user_aggregate_id
from config.process import tune_garbage_collector
from config.settings import Settings
from event_schemas import topics
from event_schemas.registry import REGISTRY
from infra.topics import ensure_topics

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


@dataclass(frozen=True)
class Appended:
    commands: int
    concurrency: int
    rate: float  # commands/s
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class AppendComparison:
    event_store: Appended
    plain_producer: Appended
    record_size: int  # bytes of one event's value, for a producer benchmark of the same records

    @property
    def ratio(self) -> float:
        return self.event_store.rate / self.plain_producer.rate


async def measure(commands: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> Appended:
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
    latencies.sort()
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)]
    return Appended(
        commands, concurrency, commands / elapsed, statistics.median(latencies) * 1000, p99 * 1000
    )


async def compare_appends(
    bootstrap_servers: str, commands: int, levels: Sequence[int]
) -> dict[int, AppendComparison]:
    """Per concurrency level, `commands` user registrations through the event store, and the same
    events through a plain idempotent producer, each into topics of a throwaway namespace (deleted
    at the end)."""
    settings = Settings(namespace=f"bench{uuid.uuid4().hex[:8]}", kafka_bootstrap_servers=bootstrap_servers)
    baseline_settings = settings.model_copy(update={"namespace": f"{settings.namespace}base"})
    try:
        await ensure_topics(settings)
        await ensure_topics(baseline_settings)
        return await _compare(settings, baseline_settings, commands, levels)
    finally:
        await delete_namespace_topics(bootstrap_servers, [settings.namespace, baseline_settings.namespace])


async def _compare(
    settings: Settings, baseline_settings: Settings, commands: int, levels: Sequence[int]
) -> dict[int, AppendComparison]:
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
    baseline = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all"
    )
    now = datetime.now(UTC)
    compared: dict[int, AppendComparison] = {}
    record_sizes: list[int] = []
    try:
        await store.wait_until_ready(within=60)
        await baseline.start()
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
                value = REGISTRY.to_bytes(event)
                if len(record_sizes) < 100:
                    record_sizes.append(len(value))
                await baseline.send_and_wait(
                    baseline_topic,
                    value=value,
                    key=event.aggregate_id.encode(),
                    headers=REGISTRY.headers(event),
                )

            ours = await measure(commands, concurrency, register)
            theirs = await measure(commands, concurrency, send)
            compared[concurrency] = AppendComparison(ours, theirs, round(statistics.mean(record_sizes)))
    finally:
        await baseline.stop()
        await store.stop()
    return compared


def store_view(email: str) -> Loaded[UserState]:
    return Loaded(user_aggregate_id(email), USER.initial, 0, next_numeric_id=1)


def print_line(name: str, figures: Appended) -> None:
    print(
        f"{name:<28} concurrency {figures.concurrency:>3}: {figures.rate:8.0f} commands/s  "
        f"p50 {figures.p50_ms:6.1f} ms  p99 {figures.p99_ms:6.1f} ms"
    )


async def main(commands: int, levels: list[int]) -> None:
    compared = await compare_appends(Settings().kafka_bootstrap_servers, commands, levels)
    for comparison in compared.values():
        print_line("event store (transactional)", comparison.event_store)
        print_line("baseline (plain producer)", comparison.plain_producer)
        print(f"{'':<28} ratio event store / baseline: {comparison.ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.eventstore_append")
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    arguments = parser.parse_args()
    tune_garbage_collector()  # as the services and projectors do
    asyncio.run(main(arguments.commands, arguments.concurrency))
