"""The edge (nginx, infra/edge.py) in front of the services: one port for every seed path and the
storefront, requests spread over every instance, an instance that is down skipped, limits on size, JSON
refusals in the services' shape, and the client's address passed on to the limits on callers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.deployment import Deployment
from tests.support.edge import EdgeProcess, address
from tests.support.processes import HttpService, free_port
from tests.support.users_client import bearer, new_email, register, token_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def second_catalog(deployment: Deployment, catalog_service: HttpService) -> Iterator[HttpService]:
    instance = deployment.gateway("catalog", name="catalog-second-instance").start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def edge(
    deployment: Deployment,
    users_service: HttpService,
    catalog_service: HttpService,
    second_catalog: HttpService,
    orders_service: HttpService,
    payments_service: HttpService,
) -> Iterator[EdgeProcess]:
    upstreams = {
        "users": [address(users_service.url)],
        "catalog": [address(catalog_service.url), address(second_catalog.url)],
        "orders": [address(orders_service.url)],
        "payments": [address(payments_service.url)],
    }
    process = EdgeProcess("edge", upstreams, deployment.work_dir).start()
    yield process
    process.stop()


def test_every_seed_path_reaches_its_own_service_through_the_one_port(
    edge: EdgeProcess, users_service: HttpService
) -> None:
    email = new_email()
    assert register(users_service.url, email=email).status_code == 201
    customer_token = token_for(users_service.url, email)
    assert httpx.get(f"{edge.url}/products", params={"limit": 1}).status_code == 200
    assert httpx.get(f"{edge.url}/users/me", headers=bearer(customer_token)).status_code == 200
    assert httpx.get(f"{edge.url}/orders", headers=bearer(customer_token)).json() == []
    # The services' own refusals come through as they are: each names what it did not find.
    no_cart = httpx.get(f"{edge.url}/cart", headers=bearer(customer_token))
    assert (no_cart.status_code, no_cart.json()["error"]) == (404, "cart_not_found")
    no_payment = httpx.get(f"{edge.url}/payments/999999999", headers=bearer(customer_token))
    assert (no_payment.status_code, no_payment.json()["error"]) == (404, "payment_not_found")
    login = httpx.post(f"{edge.url}/auth/login", json={"email": new_email(), "password": "x" * 12})
    assert login.status_code == 401, login.text


def test_the_storefront_and_the_admin_page_are_served_at_the_edge(edge: EdgeProcess) -> None:
    for page in ("/", "/admin/"):
        response = httpx.get(f"{edge.url}{page}")
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")


def test_internal_routes_and_metrics_are_not_served_at_the_edge(edge: EdgeProcess) -> None:
    for path in ("/internal/reservations", "/metrics", "/no-such-page"):
        response = httpx.get(f"{edge.url}{path}")
        assert response.status_code == 404, path
        assert response.json() == {"message": "Not Found", "error": "not_found"}


def test_requests_are_spread_over_every_instance_of_a_service(
    edge: EdgeProcess, catalog_service: HttpService, second_catalog: HttpService
) -> None:
    for _ in range(40):
        assert httpx.get(f"{edge.url}/products", params={"limit": 1}).status_code == 200

    def instances_served() -> set[str] | None:
        served = {
            entry["upstream"]
            for entry in map(json.loads, edge.access_log())
            if entry["uri"].startswith("/products")
        }
        wanted = {address(catalog_service.url), address(second_catalog.url)}
        return served if served >= wanted else None

    eventually(instances_served, within=5, what="both catalog instances in the edge's access log")


def test_a_body_over_the_limit_is_refused_at_the_edge_in_the_services_error_shape(
    edge: EdgeProcess, admin_token: str
) -> None:
    response = httpx.post(
        f"{edge.url}/products",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={**bearer(admin_token), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_a_service_without_an_answering_instance_gets_a_json_503_with_retry_after(
    deployment: Deployment, catalog_service: HttpService, tmp_path: Path
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    lonely = EdgeProcess(
        "edge-without-payments", {"catalog": [address(catalog_service.url)], "payments": [nobody]}, tmp_path
    ).start()
    try:
        response = httpx.get(f"{lonely.url}/payments/1")
        assert response.status_code == 503
        assert response.json()["error"] == "service_unavailable"
        assert response.headers["retry-after"] == "2"
        assert httpx.get(f"{lonely.url}/products", params={"limit": 1}).status_code == 200
    finally:
        lonely.stop()


def test_an_instance_that_goes_down_is_skipped_for_the_others(
    deployment: Deployment, catalog_service: HttpService, tmp_path: Path
) -> None:
    doomed = deployment.gateway("catalog", name="catalog-doomed-instance").start()
    edge = EdgeProcess(
        "edge-with-doomed", {"catalog": [address(catalog_service.url), address(doomed.url)]}, tmp_path
    ).start()
    try:
        doomed.kill()
        statuses = [httpx.get(f"{edge.url}/products", params={"limit": 1}).status_code for _ in range(20)]
        assert statuses == [200] * 20
    finally:
        edge.stop()
        doomed.stop()


def test_the_limits_on_callers_count_the_client_the_edge_names_not_the_edge(
    own_deployment: Deployment, tmp_path: Path
) -> None:
    # A deployment of its own: the limit is counted by the owner of the new user's partition, and in the
    # session's deployment that may be another users instance, with the limits lifted.
    users = own_deployment.gateway(
        "users", name="users-limited-by-address", env={"COMMERCE_REGISTRATIONS_PER_ADDRESS": "2"}
    ).start()
    edge = EdgeProcess("edge-for-limits", {"users": [address(users.url)]}, tmp_path).start()
    try:

        def register_from(client: str) -> int:
            body = {"username": "shopper", "email": new_email(), "password": "correct horse battery"}
            headers = {"X-Forwarded-For": client}
            return httpx.post(f"{edge.url}/auth/register", json=body, headers=headers, timeout=30).status_code

        assert [register_from("203.0.113.7") for _ in range(3)] == [201, 201, 429]
        assert register_from("203.0.113.8") == 201
    finally:
        edge.stop()
        users.stop()
