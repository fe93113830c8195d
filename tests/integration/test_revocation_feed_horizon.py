"""The revocations feed starts one token lifetime back, not at the start of the users topic: what a
process reads at start is bounded by an hour of the topic, whatever its history (issue 19)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from auth.revocation_feed import RevocationFeed
from auth.revocations import Revocations
from event_schemas.registry import REGISTRY
from event_schemas.users import UserRoleChanged
from tests.support.deployment import Deployment

pytestmark = pytest.mark.integration

TTL = 3600.0
PARTITIONS = 2


def role_changed(user_id: int, version: int, at: float) -> UserRoleChanged:
    return UserRoleChanged(
        aggregate_id=f"user-{user_id}",
        aggregate_version=version,
        occurred_at=datetime.fromtimestamp(at, UTC),
        user_id=user_id,
        role="customer",
    )


async def write_history(bootstrap: str, topic: str, now: float) -> dict[int, int]:
    """Two hours ago, many role changes in every partition; a minute ago, one. Returns how many old
    records each partition holds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    old = dict.fromkeys(range(PARTITIONS), 0)
    try:
        long_ago = now - 2 * TTL
        for n in range(200):
            event = role_changed(1000 + n, 2, long_ago)
            partition = n % PARTITIONS
            await producer.send(
                topic,
                REGISTRY.to_bytes(event),
                partition=partition,
                timestamp_ms=int(long_ago * 1000),
                headers=REGISTRY.headers(event),
            )
            old[partition] += 1
        recent = role_changed(7, 3, now - 60)
        await producer.send_and_wait(
            topic, REGISTRY.to_bytes(recent), partition=1, headers=REGISTRY.headers(recent)
        )
    finally:
        await producer.stop()
    return old


def test_the_feed_starts_one_token_lifetime_back_and_still_sees_every_recent_revocation(
    deployment: Deployment,
) -> None:
    bootstrap = deployment.servers.kafka_bootstrap
    topic = f"{deployment.namespace}.horizon-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        now = time.time()
        old = await write_history(bootstrap, topic, now)
        view = Revocations(token_ttl=TTL, stale_after=30)
        feed = RevocationFeed(bootstrap, topic, view, REGISTRY)
        feed.start()
        try:
            assert await feed.confirmed(within=30)
        finally:
            await feed.stop()
        assert feed.started_at == old, "every record older than a token lifetime was skipped"
        assert feed.revocations_read == 1 and len(view) == 1, "the recent revocation was read, nothing older"

    asyncio.run(scenario())
