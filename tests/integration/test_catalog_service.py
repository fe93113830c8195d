"""The catalog service over HTTP, against real Kafka, PostgreSQL and Elasticsearch."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from event_schemas.catalog import ProductCreated
from event_schemas.topics import CATALOG, in_namespace
from tests.support.catalog_client import create_product, created, get_product, list_products, product_body
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.processes import HttpService
from tests.support.users_client import bearer

pytestmark = pytest.mark.integration


def test_an_admin_creates_a_product_and_reads_it_back_at_once(
    catalog_service: HttpService, admin_token: str
) -> None:
    product, consistency = created(catalog_service.url, admin_token, price=19.99, stock=7)
    assert product["price"] == "19.99" and product["stock"] == 7 and product["version"] == 1
    assert isinstance(product["id"], int)
    read = get_product(catalog_service.url, product["id"], consistency)
    assert read.status_code == 200, read.text
    assert {k: read.json()[k] for k in ("id", "name", "description", "price", "stock")} == {
        k: product[k] for k in ("id", "name", "description", "price", "stock")
    }


def test_customers_may_not_write_and_anonymous_callers_must_log_in(
    catalog_service: HttpService, customer_token: str
) -> None:
    assert create_product(catalog_service.url, customer_token).status_code == 403
    anonymous = httpx.post(f"{catalog_service.url}/products", json=product_body())
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"description": ""}, "description"),
        ({"price": 0}, "price"),
        ({"price": -1}, "price"),
        ({"price": "1.999"}, "price"),
        ({"price": "abc"}, "price"),
        ({"stock": -1}, "stock"),
        ({"stock": 1.5}, "stock"),
        ({"stock": "3"}, "stock"),
        ({"id": 5}, "id"),
    ],
)
def test_invalid_products_get_a_422_naming_the_field(
    catalog_service: HttpService, admin_token: str, overrides: dict[str, Any], field: str
) -> None:
    response = create_product(catalog_service.url, admin_token, **overrides)
    assert response.status_code == 422, response.text
    assert field in [detail["field"] for detail in response.json()["details"]]


def test_money_is_exact_end_to_end(catalog_service: HttpService, admin_token: str) -> None:
    product, consistency = created(catalog_service.url, admin_token, price=19.99)
    read = get_product(catalog_service.url, product["id"], consistency).json()
    assert read["price"] == "19.99"
    assert Decimal(read["price"]) * 3 == Decimal("59.97")
    cheap, consistency = created(catalog_service.url, admin_token, price="0.10")
    assert get_product(catalog_service.url, cheap["id"], consistency).json()["price"] == "0.10"


@pytest.mark.parametrize(
    "price",
    [
        '"1e2"',
        '"1_000"',
        '"\u0661\u0660\u0660"',
        '" 9.99"',
        '"+5"',
        '".5"',
        '"19.999"',
        "1e2",
        "1.5e1",
        "19.990",
    ],
)
def test_a_price_not_written_as_ascii_digits_with_at_most_two_decimals_is_a_422_naming_it(
    catalog_service: HttpService, admin_token: str, price: str
) -> None:
    """Each as the body's own text: a JSON string, or a JSON number judged by how it is written."""
    body = '{"name": "Priced", "description": "oddly", "price": ' + price + ', "stock": 1}'
    response = httpx.post(
        f"{catalog_service.url}/products",
        content=body.encode(),
        headers=bearer(admin_token) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert [(d["field"], d["type"]) for d in response.json()["details"]] == [("price", "price_format")]


def test_a_price_as_ascii_digits_is_taken_exactly_as_a_string_or_a_json_number(
    catalog_service: HttpService, admin_token: str
) -> None:
    assert created(catalog_service.url, admin_token, price="9.99")[0]["price"] == "9.99"
    body = b'{"name": "Priced", "description": "as a number", "price": 9.99, "stock": 1}'
    number = httpx.post(
        f"{catalog_service.url}/products",
        content=body,
        headers=bearer(admin_token) | {"Content-Type": "application/json"},
    )
    assert number.status_code == 201, number.text
    assert number.json()["price"] == "9.99"


def test_a_zero_decimal_currency_takes_whole_prices_only_on_create_and_update(
    catalog_service: HttpService, admin_token: str
) -> None:
    refused = create_product(catalog_service.url, admin_token, price="19.99", currency="JPY")
    assert refused.status_code == 422, refused.text
    expected = {
        "message": "Invalid request: price: 19.99 is not an amount of JPY: JPY takes whole amounts only",
        "error": "validation_error",
        "details": [
            {
                "field": "price",
                "message": "19.99 is not an amount of JPY: JPY takes whole amounts only",
                "type": "amount_not_in_currency",
            }
        ],
    }
    assert refused.json() == expected
    product, _ = created(catalog_service.url, admin_token, price="1999", currency="JPY")
    assert (product["price"], product["currency"]) == ("1999.00", "JPY")
    url = f"{catalog_service.url}/products/{product['id']}"
    patched = httpx.patch(url, json={"price": "19.99"}, headers=bearer(admin_token))
    assert patched.status_code == 422, patched.text
    assert patched.json() == expected  # the same answer, though only the stored product knows its currency
    repriced = httpx.patch(url, json={"price": "2500"}, headers=bearer(admin_token))
    assert repriced.status_code == 200, repriced.text
    read = get_product(catalog_service.url, product["id"], repriced.headers["X-Consistency-Token"]).json()
    assert (read["price"], read["currency"]) == ("2500.00", "JPY")


def test_patch_changes_only_what_it_names(catalog_service: HttpService, admin_token: str) -> None:
    product, _ = created(catalog_service.url, admin_token, description="Before", stock=4)
    response = httpx.patch(
        f"{catalog_service.url}/products/{product['id']}",
        json={"price": "25.00"},
        headers=bearer(admin_token),
    )
    assert response.status_code == 200, response.text
    read = get_product(catalog_service.url, product["id"], response.headers["X-Consistency-Token"]).json()
    assert (read["price"], read["description"], read["stock"], read["name"]) == (
        "25.00",
        "Before",
        4,
        product["name"],
    )
    empty = httpx.patch(
        f"{catalog_service.url}/products/{product['id']}", json={}, headers=bearer(admin_token)
    )
    assert empty.status_code == 422


def test_a_deleted_product_is_gone_and_cannot_be_changed(
    catalog_service: HttpService, admin_token: str
) -> None:
    product, _ = created(catalog_service.url, admin_token)
    url = f"{catalog_service.url}/products/{product['id']}"
    deleted = httpx.delete(url, headers=bearer(admin_token))
    assert deleted.status_code == 200 and deleted.json() == {"id": product["id"]}
    assert (
        get_product(catalog_service.url, product["id"], deleted.headers["X-Consistency-Token"]).status_code
        == 404
    )
    assert httpx.patch(url, json={"name": "Again"}, headers=bearer(admin_token)).status_code == 404
    assert httpx.delete(url, headers=bearer(admin_token)).status_code == 404


def test_unknown_products_are_404_with_a_json_body(catalog_service: HttpService, admin_token: str) -> None:
    for product_id in (999_999_999, 7, 999_999_005):  # no id of a product any test creates
        missing = get_product(catalog_service.url, product_id)
        assert missing.status_code == 404
        assert missing.json()["message"] == "product not found"
        patched = httpx.patch(
            f"{catalog_service.url}/products/{product_id}", json={"name": "x"}, headers=bearer(admin_token)
        )
        assert patched.status_code == 404


def test_stock_can_be_adjusted_but_never_below_zero(catalog_service: HttpService, admin_token: str) -> None:
    product, _ = created(catalog_service.url, admin_token, stock=3)
    url = f"{catalog_service.url}/products/{product['id']}/stock-adjustments"
    restocked = httpx.post(url, json={"delta": 5, "reason": "delivery"}, headers=bearer(admin_token))
    assert restocked.status_code == 200 and restocked.json()["stock"] == 8
    too_many = httpx.post(url, json={"delta": -9, "reason": "breakage"}, headers=bearer(admin_token))
    assert too_many.status_code == 409
    assert too_many.json()["error"] == "insufficient_stock"


def test_a_retried_creation_with_the_same_idempotency_key_creates_one_product(
    catalog_service: HttpService, admin_token: str, deployment: Deployment
) -> None:
    name = f"Idempotent {uuid.uuid4().hex}"
    headers = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    first = create_product(catalog_service.url, admin_token, headers=headers, name=name)
    retry = create_product(catalog_service.url, admin_token, headers=headers, name=name)
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    events = committed_events(deployment.servers.kafka_bootstrap, in_namespace(deployment.namespace, CATALOG))
    assert sum(isinstance(e, ProductCreated) and e.name == name for e, _ in events) == 1


def test_bulk_stock_needs_a_caller_and_lists_only_known_products(
    catalog_service: HttpService, admin_token: str, customer_token: str
) -> None:
    product, consistency = created(catalog_service.url, admin_token, stock=2)
    url = f"{catalog_service.url}/products/stock"
    assert httpx.post(url, json={"ids": [product["id"]]}).status_code == 401
    response = httpx.post(
        url,
        json={"ids": [product["id"], 999_999_999]},
        headers=bearer(customer_token) | {"X-Consistency-Token": consistency},
    )
    assert response.status_code == 200
    assert [(p["id"], p["stock"]) for p in response.json()] == [(product["id"], 2)]
    assert httpx.post(url, json={}, headers=bearer(customer_token)).status_code == 422


def test_the_list_pages_in_a_stable_order_with_a_total(
    catalog_service: HttpService, admin_token: str
) -> None:
    consistency = ""
    for _ in range(3):
        _, consistency = created(catalog_service.url, admin_token)
    first = list_products(catalog_service.url, consistency, limit=2, offset=0)
    second = list_products(catalog_service.url, None, limit=2, offset=2)
    assert first.status_code == second.status_code == 200
    total = int(first.headers["X-Total-Count"])
    assert total >= 3
    ids = [p["id"] for p in first.json()] + [p["id"] for p in second.json()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    everything = list_products(catalog_service.url, None, limit=100).json()
    assert [p["id"] for p in everything][:4] == ids


def test_the_list_filters_by_price_and_stock_and_sorts(
    catalog_service: HttpService, admin_token: str
) -> None:
    _, consistency = created(catalog_service.url, admin_token, price="1234.56", stock=0)
    _, consistency = created(catalog_service.url, admin_token, price="1234.57", stock=1)
    pricey = list_products(
        catalog_service.url, consistency, min_price="1234.56", max_price="1234.57", sort="price_desc"
    ).json()
    assert [p["price"] for p in pricey] == ["1234.57", "1234.56"]
    in_stock = list_products(
        catalog_service.url, None, min_price="1234.56", max_price="1234.57", in_stock=True
    )
    assert [p["price"] for p in in_stock.json()] == ["1234.57"]
    assert in_stock.headers["X-Total-Count"] == "1"
    assert list_products(catalog_service.url, None, limit=0).status_code == 422
    assert list_products(catalog_service.url, None, sort="nonsense").status_code == 422


def test_metrics_label_routes_by_template_and_count_appended_events(
    catalog_service: HttpService, admin_token: str
) -> None:
    product, _ = created(catalog_service.url, admin_token)
    get_product(catalog_service.url, product["id"])
    text = httpx.get(f"{catalog_service.url}/metrics").text
    assert 'route="/products/{product_id}"' in text
    assert f'route="/products/{product["id"]}"' not in text
    assert 'events_appended_total{event_type="ProductCreated"' in text


def test_a_read_after_a_change_never_answers_the_cached_product_from_before_it(
    catalog_service: HttpService, admin_token: str
) -> None:
    product, consistency = created(catalog_service.url, admin_token, stock=5)
    assert get_product(catalog_service.url, product["id"], consistency).json()["stock"] == 5  # cached now
    assert get_product(catalog_service.url, product["id"]).json()["stock"] == 5
    adjusted = httpx.post(
        f"{catalog_service.url}/products/{product['id']}/stock-adjustments",
        json={"delta": 3, "reason": "delivery"},
        headers=bearer(admin_token),
        timeout=30,
    )
    assert adjusted.status_code == 200, adjusted.text
    after = adjusted.headers["X-Consistency-Token"]
    assert get_product(catalog_service.url, product["id"], after).json()["stock"] == 8
    # Without a token, too: the read with the token replaced the cached answer, and the projector's
    # notice dropped it, whichever came first.
    assert [get_product(catalog_service.url, product["id"]).json()["stock"] for _ in range(3)] == [8, 8, 8]
    listed = list_products(catalog_service.url, after, sort="newest", limit=100).json()
    assert next(p["stock"] for p in listed if p["id"] == product["id"]) == 8
