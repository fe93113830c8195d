"""Hostile input is refused at the edge with a clear 4xx and a JSON body (issue 10: control characters
that would stop a projector, bodies too large to parse, consistency tokens that could only time out,
bodies nested too deeply, in another content type or not UTF-8, extreme numbers and ids).
tests/integration/test_fuzzed_requests.py generates many more from each service's OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from tests.support.catalog_client import created, product_body
from tests.support.deployment import Deployment
from tests.support.orders_client import new_customer_id
from tests.support.processes import HttpService
from tests.support.purchase import confirmed_order, payment_started
from tests.support.users_client import bearer

JSON = {"Content-Type": "application/json"}


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


def test_a_body_nested_ten_thousand_levels_deep_is_a_422_not_a_500(
    users_service: HttpService, catalog_service: HttpService, admin_token: str
) -> None:
    arrays = b"[" * 10_000 + b"]" * 10_000
    objects = b'{"name":' * 10_000 + b"1" + b"}" * 10_000
    for url, token in (
        (f"{users_service.url}/auth/login", None),
        (f"{catalog_service.url}/products", admin_token),
    ):
        for body in (arrays, objects):
            answered = httpx.post(url, content=body, headers=JSON | (bearer(token) if token else {}))
            assert answered.status_code == 422, (url, answered.text)
            assert answered.json()["error"] == "invalid_json"


def test_a_body_that_is_not_utf8_or_holds_a_number_of_thousands_of_digits_is_a_422(
    users_service: HttpService,
) -> None:
    for body in (
        b'{"email": "\xc3\x28@example.com", "password": "long enough"}',
        b"\xff\xfe{}",
        b'{"email": "a@example.com", "password": "long enough", "n": ' + b"9" * 5000 + b"}",
    ):
        answered = httpx.post(f"{users_service.url}/auth/login", content=body, headers=JSON)
        assert answered.status_code == 422, (body[:40], answered.text)
        assert answered.json()["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"email": "a@example.com", "password": "long enough"}'),
        ("application/x-www-form-urlencoded", "email=a%40example.com&password=long+enough"),
        ("application/xml", "<login><email>a@example.com</email></login>"),
        ("", '{"email": "a@example.com", "password": "long enough"}'),
    ],
)
def test_a_body_in_another_content_type_is_refused_with_a_json_4xx(
    users_service: HttpService, content_type: str, body: str
) -> None:
    answered = httpx.post(
        f"{users_service.url}/auth/login", content=body, headers={"Content-Type": content_type}
    )
    assert answered.status_code in (415, 422), answered.text
    assert answered.json()["error"] == "validation_error"


@pytest.mark.parametrize(
    "raw",
    [
        b'"price": 1e309, "stock": 1',
        b'"price": NaN, "stock": 1',
        b'"price": "Infinity", "stock": 1',
        b'"price": -0, "stock": 1',
        b'"price": 1e-400, "stock": 1',
        b'"price": 99999999999999999999, "stock": 1',
        b'"price": "0.001", "stock": 1',
        b'"price": 1e2, "stock": 1',
        b'"price": 1e99999999999999999999999999999999, "stock": 1',  # beyond Decimal's exponents
        b'"price": "1e2", "stock": 1',
        rb'"price": "\u0661\u0660\u0660", "stock": 1',  # Arabic-Indic digits, as JSON escapes
        b'"price": "19.99", "stock": 1e99999999999999999999999999999999',
        b'"price": "19.99", "stock": 18446744073709551616',
        b'"price": "19.99", "stock": 1e309',
        b'"price": "19.99", "stock": -1',
    ],
)
def test_an_extreme_number_in_a_body_is_a_422(
    catalog_service: HttpService, admin_token: str, raw: bytes
) -> None:
    body = b'{"name": "Extreme", "description": "numbers", ' + raw + b"}"
    answered = httpx.post(f"{catalog_service.url}/products", content=body, headers=JSON | bearer(admin_token))
    assert answered.status_code == 422, answered.text
    assert answered.json()["error"] == "validation_error"


def test_an_extreme_id_or_number_in_a_path_or_query_is_a_4xx_never_a_500(
    catalog_service: HttpService,
    orders_service: HttpService,
    payments_service: HttpService,
    deployment: Deployment,
) -> None:
    customer = bearer(deployment.customer_token(new_customer_id()))
    huge, beyond_64_bits = "99999999999999999999", str(2**64)
    refused = [
        ("GET", f"{catalog_service.url}/products/{huge}", 422),
        ("GET", f"{catalog_service.url}/products/0", 422),
        ("GET", f"{catalog_service.url}/products/-1", 404),
        ("GET", f"{catalog_service.url}/products/1e3", 404),
        ("GET", f"{catalog_service.url}/products?limit=1e309", 422),
        ("GET", f"{catalog_service.url}/products?offset={huge}", 422),
        ("GET", f"{catalog_service.url}/products?min_price=1e309", 422),
        ("GET", f"{catalog_service.url}/products?max_price=NaN", 422),
        ("GET", f"{orders_service.url}/orders/{beyond_64_bits}", 422),
        ("GET", f"{orders_service.url}/orders/{huge}/checkout", 422),
        ("GET", f"{orders_service.url}/orders?limit={huge}", 422),
        ("DELETE", f"{orders_service.url}/cart/{huge}", 422),
        ("POST", f"{orders_service.url}/orders/{huge}/cancel", 422),
        ("GET", f"{payments_service.url}/payments/{beyond_64_bits}", 422),
        ("POST", f"{payments_service.url}/verify-payment/pi_{huge}", 404),
    ]
    for method, url, status in refused:
        answered = httpx.request(method, url, headers=customer, timeout=10)
        assert answered.status_code == status, (method, url, answered.text)
        assert answered.json()["error"], (method, url)


def test_a_method_a_path_does_not_serve_is_a_405_naming_every_method_it_does(
    catalog_service: HttpService, admin_token: str
) -> None:
    # `/products/{id}` is served by the query side (GET) and the command side (PATCH, DELETE).
    answered = httpx.put(f"{catalog_service.url}/products/1", json={}, headers=bearer(admin_token))
    assert answered.status_code == 405, answered.text
    assert answered.headers["Allow"] == "DELETE, GET, PATCH"
    assert answered.json()["error"] == "method_not_allowed"
    # `/products/stock` is not a product id: only its POST is served there.
    stock = httpx.patch(f"{catalog_service.url}/products/stock", json={}, headers=bearer(admin_token))
    assert stock.status_code == 405, stock.text
    assert stock.headers["Allow"] == "POST"


@pytest.mark.usefixtures("order_saga")
def test_a_card_the_simulated_gateway_does_not_know_is_a_422_not_a_gateway_failure(
    payments_service: HttpService,
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    customer = deployment.customer_token(new_customer_id())
    order_number, _ = confirmed_order(orders_service.url, catalog_service.url, admin_token, customer)
    payment = payment_started(payments_service.url, customer, order_number)
    answered = httpx.post(
        f"{payments_service.url}/simulated-gateway/payment_intents/{payment['intentId']}/confirm",
        json={"clientSecret": payment["secret"], "card": "1111 2222 3333 4444"},
    )
    assert answered.status_code == 422, answered.text
    assert answered.json()["error"] == "unknown_test_card"
