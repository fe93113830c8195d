"""A command side on an empty disk begins from its partitions' checkpoints, and one restarted with
its disk from its own stores; either decides exactly as one that folded the whole log would."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT, ProductState
from command_api.eventstore.checkpoints import CheckpointStore
from command_api.eventstore.membership import TopicMissing, partition_count
from command_api.eventstore.model import CommandContext, Loaded
from command_api.eventstore.partition_state import PartitionState, PendingBatch
from command_api.eventstore.partition_store import PartitionStore
from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.money import Money
from infra.topics import ensure_topics
from tests.support.catalog_client import create_product
from tests.support.deployment import Deployment
from tests.support.folding import commit
from tests.support.users_client import bearer

pytestmark = pytest.mark.integration

CHECKPOINTS_OFTEN = {"COMMERCE_CHECKPOINT_EVERY_RECORDS": "5"}


def adjust(base_url: str, token: str, product_id: int, delta: int) -> httpx.Response:
    return httpx.post(
        f"{base_url}/products/{product_id}/stock-adjustments",
        json={"delta": delta, "reason": "count"},
        headers=bearer(token),
        timeout=30,
    )


def test_a_command_side_starts_from_checkpoints_then_from_its_disk_and_keeps_every_decision(
    own_deployment: Deployment,
) -> None:
    token = own_deployment.admin_token()
    first = own_deployment.gateway(
        "catalog", side="command", name="catalog-checkpointing", env=CHECKPOINTS_OFTEN
    )
    first.start()
    try:
        key = {"Idempotency-Key": str(uuid.uuid4())}
        keyed = create_product(first.url, token, headers=key, name="Keyed lamp", stock=10)
        assert keyed.status_code == 201
        products = [create_product(first.url, token, stock=10).json()["id"] for _ in range(12)]
        for product_id in products:
            for _ in range(3):
                assert adjust(first.url, token, product_id, 1).status_code == 200
        # Written after the last checkpoint of some partitions: the tail a cold start reads.
        last = create_product(first.url, token, stock=7).json()["id"]
    finally:
        first.stop()

    second = own_deployment.gateway(
        "catalog", side="command", name="catalog-from-checkpoints", env=CHECKPOINTS_OFTEN
    )
    second.start()
    try:
        log = second.log_path.read_text()
        assert "starts from its checkpoint" in log, second.log_tail()
        for product_id in products:
            answer = adjust(second.url, token, product_id, -1)
            assert answer.status_code == 200 and answer.json()["stock"] == 12, answer.text
        assert adjust(second.url, token, last, 1).json()["stock"] == 8
        retried = create_product(second.url, token, headers=key, name="Keyed lamp", stock=10)
        assert retried.status_code == 201 and retried.json()["id"] == keyed.json()["id"]
        assert retried.headers.get("Idempotent-Replayed") == "true"
        fresh = create_product(second.url, token).json()["id"]
        assert fresh not in [*products, last, keyed.json()["id"]], "ids are never given twice"
    finally:
        second.stop()

    logged_before = len(second.log_path.read_text())
    second.start()  # the same instance, with its disk
    try:
        assert "resumes from its store" in second.log_path.read_text()[logged_before:], second.log_tail()
        for product_id in products:
            answer = adjust(second.url, token, product_id, -1)
            assert answer.status_code == 200 and answer.json()["stock"] == 11, answer.text
        again = create_product(second.url, token, headers=key, name="Keyed lamp", stock=10)
        assert again.json()["id"] == keyed.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
        assert create_product(second.url, token).json()["id"] not in [*products, last, fresh]
    finally:
        second.stop()


def checkpoints_of(deployment: Deployment, topic: str, key: bytes) -> CheckpointStore:
    return CheckpointStore(
        bootstrap_servers=deployment.servers.kafka_bootstrap,
        topic=topic,
        replication_factor=1,
        key=key,
        timeout=5,
    )


def test_a_checkpoint_is_restored_only_signed_with_the_deployments_key_and_of_the_same_shape(
    deployment: Deployment, tmp_path: Path
) -> None:
    topic = f"{deployment.namespace}.checkpointed-{uuid.uuid4().hex[:8]}"
    key = b"k" * 32

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.servers.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        for _ in range(100):  # until every broker's metadata names it
            try:
                await partition_count(deployment.servers.kafka_bootstrap, topic)
                break
            except TopicMissing:
                await asyncio.sleep(0.1)
        state = PartitionState(0, [PRODUCT], PartitionStore(tmp_path / "owner.sqlite3", [PRODUCT]))
        for n in range(3):
            batch = PendingBatch(state)
            batch.decide_new(PRODUCT, partial(created, n=n), CommandContext())
            commit(state, batch)
        state.flush()
        writer = checkpoints_of(deployment, topic, key)
        try:
            assert await writer.save(0, state.store) == 3
            assert await writer.save(0, state.store) == 3  # a newer one replaces it, chunk by chunk
        finally:
            await writer.stop()

        other_key = PartitionStore(tmp_path / "other-key.sqlite3", [PRODUCT])
        assert not await checkpoints_of(deployment, topic, b"x" * 32).restore(0, other_key)
        assert other_key.next_offset == 0 and other_key.aggregates() == 0

        newer_kind = replace(PRODUCT, state_version=2)
        other_shape = PartitionStore(tmp_path / "other-shape.sqlite3", [newer_kind])
        assert not await checkpoints_of(deployment, topic, key).restore(0, other_shape)

        restored = PartitionStore(tmp_path / "new-owner.sqlite3", [PRODUCT])
        assert await checkpoints_of(deployment, topic, key).restore(0, restored)
        assert restored.next_offset == 3 and restored.aggregates() == 3
        assert restored.record("product-2000") == state.store.record("product-2000")

    asyncio.run(scenario())


def created(product: Loaded[ProductState], n: int) -> list[Event]:
    return domain.create(
        product,
        name=f"Lamp {n}",
        description="",
        price=Money(amount=Decimal("9.99")),
        stock=5,
        now=datetime.now(UTC),
    )


async def make_the_catalog_topic_again(deployment: Deployment) -> None:
    """Delete the catalog's events and checkpoints topics and make the events topic anew (a cluster
    rebuilt, a topic re-created): the same names, another log."""
    catalog = topics.in_namespace(deployment.namespace, topics.CATALOG)
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.servers.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics(
            [name for name in (catalog, topics.checkpoints(catalog)) if name in existing]
        )
        for _ in range(100):
            if catalog not in set(await admin.list_topics()):
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    for _ in range(50):
        try:
            await ensure_topics(deployment.settings)
            return
        except KafkaError:  # still being deleted
            await asyncio.sleep(0.2)


def test_a_store_folded_from_another_log_is_rebuilt_not_trusted(own_deployment: Deployment) -> None:
    token = own_deployment.admin_token()
    catalog = own_deployment.gateway("catalog", side="command", name="catalog-outliving-its-log")
    catalog.start()
    try:
        old = create_product(catalog.url, token, stock=5).json()["id"]
    finally:
        catalog.stop()
    asyncio.run(make_the_catalog_topic_again(own_deployment))
    logged_before = len(catalog.log_path.read_text())
    catalog.start()  # the same instance, with the store it folded from the old log
    try:
        assert "emptied and rebuilt" in catalog.log_path.read_text()[logged_before:], catalog.log_tail()
        assert adjust(catalog.url, token, old, 1).status_code == 404, (
            "the old log's product is not in this one"
        )
        assert create_product(catalog.url, token, stock=5).status_code == 201
    finally:
        catalog.stop()
