"""Two instances of the catalog command side share the topic's partitions."""

from __future__ import annotations

import uuid

import httpx
import pytest

from command_api.eventstore.partitioning import ID_STRIDE
from tests.support.catalog_client import create_product, product_body
from tests.support.deployment import Deployment
from tests.support.processes import wait_until_partitions_split
from tests.support.users_client import bearer

pytestmark = pytest.mark.integration


def test_two_instances_allocate_distinct_ids_and_a_keyed_retry_lands_on_the_same_product(
    own_deployment: Deployment,
) -> None:
    first = own_deployment.gateway("catalog", side="command", name="catalog-instance-a").start()
    second = own_deployment.gateway("catalog", side="command", name="catalog-instance-b").start()
    token = own_deployment.admin_token()
    try:
        wait_until_partitions_split(
            "catalog", [first, second], own_deployment.settings.kafka_partitions, own_deployment.admin_token()
        )

        ids = [create_product((first, second)[i % 2].url, token).json()["id"] for i in range(20)]
        assert len(set(ids)) == 20

        for _ in range(5):
            key, body = {"Idempotency-Key": str(uuid.uuid4())}, product_body()
            original = create_product(first.url, token, headers=key, **body)
            retried = create_product(second.url, token, headers=key, **body)
            assert original.status_code == retried.status_code == 201
            assert retried.json()["id"] == original.json()["id"]

        # Any instance changes any product: the command reaches the owner of its partition. A public
        # route never names the instance it went to; an internal one (the saga's) does, when forwarded.
        owned_by_first = set(
            httpx.get(f"{first.url}/internal/partitions", headers=bearer(token), timeout=5).json()["catalog"][
                "owned"
            ]
        )
        service = bearer(own_deployment.service_token())
        for product_id in ids[:6]:
            response = httpx.patch(
                f"{second.url}/products/{product_id}", json={"stock": 3}, headers=bearer(token), timeout=30
            )
            assert response.status_code == 200 and response.json()["stock"] == 3
            assert "x-commerce-owner" not in response.headers
            reservation = {"orderId": str(uuid.uuid4()), "productId": product_id, "quantity": 1}
            reserved = httpx.post(
                f"{second.url}/internal/reservations", json=reservation, headers=service, timeout=30
            )
            assert reserved.status_code == 200, reserved.text
            forwarded = product_id % ID_STRIDE in owned_by_first
            assert reserved.headers.get("x-commerce-owner") == (first.url if forwarded else None)
    finally:
        first.stop()
        second.stop()
