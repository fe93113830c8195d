"""Idempotency keys hold between callers, the way payment APIs keep them: scoped to the caller and
the route, bound to the first request, answering with the first response."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from auth.tokens import load_issuer
from tests.support.catalog_client import create_product, get_product, product_body
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.users_client import bearer


def another_admin(deployment: Deployment) -> str:
    issuer = load_issuer(deployment.settings)
    return issuer.issue(
        user_id=2_000_001, email="second-admin@example.com", role="admin", now=datetime.now(UTC)
    )


def test_another_admin_reusing_a_key_creates_their_own_product(
    catalog_service: HttpService, deployment: Deployment
) -> None:
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = product_body()
    first = create_product(catalog_service.url, deployment.admin_token(), headers=key, **body)
    second = create_product(catalog_service.url, another_admin(deployment), headers=key, **body)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in second.headers


def test_a_retry_answers_with_the_first_response_and_another_request_with_the_key_is_refused(
    catalog_service: HttpService, deployment: Deployment
) -> None:
    admin = deployment.admin_token()
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = product_body()
    first = create_product(catalog_service.url, admin, headers=key, **body)
    assert first.status_code == 201, first.text
    renamed = httpx.patch(
        f"{catalog_service.url}/products/{first.json()['id']}",
        json={"name": "Renamed since"},
        headers=bearer(admin),
    )
    assert renamed.status_code == 200, renamed.text

    retry = create_product(catalog_service.url, admin, headers=key, **body)
    assert retry.status_code == 201, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()  # the first response itself, not the product as it is now
    assert retry.headers["X-Consistency-Token"] == first.headers["X-Consistency-Token"]

    different = create_product(catalog_service.url, admin, headers=key, **(body | {"stock": 99}))
    assert different.status_code == 422, different.text
    assert different.json()["error"] == "idempotency_key_reused"


def test_one_key_on_two_routes_is_two_commands(catalog_service: HttpService, deployment: Deployment) -> None:
    admin = deployment.admin_token()
    product = create_product(catalog_service.url, admin).json()
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    url = f"{catalog_service.url}/products/{product['id']}"
    patched = httpx.patch(url, json={"name": "Patched"}, headers=bearer(admin) | key)
    assert patched.status_code == 200, patched.text
    deleted = httpx.delete(url, headers=bearer(admin) | key)
    assert deleted.status_code == 200, deleted.text
    assert "Idempotent-Replayed" not in deleted.headers
    gone = get_product(catalog_service.url, product["id"], deleted.headers["X-Consistency-Token"])
    assert gone.status_code == 404, gone.text
