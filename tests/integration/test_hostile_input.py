"""Hostile input is refused at the edge with a clear 4xx and a JSON body (issue 10: control characters
that would stop a projector, bodies too large to parse, consistency tokens that could only time out)."""

from __future__ import annotations

import httpx

from tests.support.catalog_client import created, product_body
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.users_client import bearer


def test_a_product_named_with_a_nul_is_refused_and_never_reaches_the_log(
    catalog_service: HttpService, admin_token: str
) -> None:
    refused = httpx.post(
        f"{catalog_service.url}/products",
        json=product_body(name="nul\u0000name"),
        headers=bearer(admin_token),
    )
    assert refused.status_code == 422, refused.text
    assert "control characters" in refused.json()["message"]
    search = httpx.get(f"{catalog_service.url}/products", params={"search": "mug\u0000"})
    assert search.status_code == 422, search.text


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed(
    catalog_service: HttpService, admin_token: str
) -> None:
    huge = b'{"name": "' + b"x" * 2_000_000 + b'"}'
    declared = httpx.post(
        f"{catalog_service.url}/products",
        content=huge,
        headers=bearer(admin_token) | {"Content-Type": "application/json"},
    )
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"] == "body_too_large"

    def chunks() -> object:
        yield huge[:1_000_000]
        yield huge[1_000_000:]

    streamed = httpx.post(
        f"{catalog_service.url}/products",
        content=chunks(),  # type: ignore[arg-type]
        headers=bearer(admin_token) | {"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413, streamed.text


def test_a_consistency_token_for_another_topic_or_no_partition_is_refused_at_once(
    catalog_service: HttpService, admin_token: str
) -> None:
    product, token = created(catalog_service.url, admin_token)
    topic = token.rsplit(":", 2)[0]
    url = f"{catalog_service.url}/products/{product['id']}"
    for bad in (f"{topic}:999:0", f"{topic.replace('catalog', 'orders')}:0:0"):
        answered = httpx.get(url, headers={"X-Consistency-Token": bad}, timeout=2)  # not the 5 s wait
        assert answered.status_code == 422, (bad, answered.text)
        assert answered.json()["error"] == "bad_consistency_token"


def test_operations_routes_answer_operators_only(
    catalog_service: HttpService, admin_token: str, customer_token: str, deployment: Deployment
) -> None:
    url = f"{catalog_service.url}/internal/partitions"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=bearer(customer_token)).status_code == 403
    assert httpx.get(url, headers=bearer(admin_token)).status_code == 200
    scraped = deployment.gateway(
        "users", side="query", env={"COMMERCE_METRICS_TOKEN": "scrape-secret"}
    ).start()
    try:
        metrics = f"{scraped.url}/metrics"
        assert httpx.get(metrics).status_code == 401
        assert httpx.get(metrics, headers=bearer(admin_token)).status_code == 401
        assert httpx.get(metrics, headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    finally:
        scraped.stop()
