"""A command side started cold begins from its partitions' snapshots and decides exactly as one that
replayed the whole log would."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.catalog_client import create_product
from tests.support.deployment import Deployment
from tests.support.users_client import bearer

pytestmark = pytest.mark.integration

SNAPSHOTS_OFTEN = {"COMMERCE_SNAPSHOT_EVERY_RECORDS": "5"}


def adjust(base_url: str, token: str, product_id: int, delta: int) -> httpx.Response:
    return httpx.post(
        f"{base_url}/products/{product_id}/stock-adjustments",
        json={"delta": delta, "reason": "count"},
        headers=bearer(token),
        timeout=30,
    )


def test_a_restarted_command_side_starts_from_snapshots_and_keeps_every_decision(
    own_deployment: Deployment,
) -> None:
    token = own_deployment.admin_token()
    first = own_deployment.gateway(
        "catalog", side="command", name="catalog-snapshotting", env=SNAPSHOTS_OFTEN
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
        # Written after the last snapshot of some partitions: the tail a cold start reads.
        last = create_product(first.url, token, stock=7).json()["id"]
    finally:
        first.stop()

    second = own_deployment.gateway(
        "catalog", side="command", name="catalog-from-snapshots", env=SNAPSHOTS_OFTEN
    )
    second.start()
    try:
        log = second.log_path.read_text()
        assert "starts from its snapshot" in log, second.log_tail()
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
