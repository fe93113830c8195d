"""Reads without a consistency token see the caller's own acknowledged writes (those acknowledged by
the instance that serves the read), as the seed's clients, which send no token, expect."""

from __future__ import annotations

import httpx
import pytest

from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.orders_client import add_to_cart, new_customer_id, place_order, replica_knows
from tests.support.processes import HttpService
from tests.support.users_client import bearer


def test_products_created_are_found_at_once_without_a_token(
    catalog_service: HttpService, admin_token: str
) -> None:
    for _ in range(5):
        first, _ = created(catalog_service.url, admin_token)
        second, _ = created(catalog_service.url, admin_token)
        stock = httpx.post(
            f"{catalog_service.url}/products/stock",
            json={"ids": [first["id"], second["id"]]},
            headers=bearer(admin_token),
        )
        assert stock.status_code == 200, stock.text
        assert sorted(p["id"] for p in stock.json()) == sorted([first["id"], second["id"]])
        assert get_product(catalog_service.url, second["id"]).status_code == 200


@pytest.mark.usefixtures("order_saga")
def test_a_placed_order_is_listed_at_once_without_a_token(
    orders_service: HttpService, catalog_service: HttpService, deployment: Deployment, admin_token: str
) -> None:
    product, _ = created(catalog_service.url, admin_token, stock=100)
    replica_knows(deployment, product["id"])
    customer = deployment.customer_token(new_customer_id())
    for _ in range(5):
        assert add_to_cart(orders_service.url, customer, product["id"], 1).status_code == 200
        cart = httpx.get(f"{orders_service.url}/cart", headers=bearer(customer)).json()
        assert [line["qty"] for line in cart["lineItems"]] == [1]
        placed = place_order(orders_service.url, customer)
        assert placed.status_code == 200, placed.text
        listed = httpx.get(f"{orders_service.url}/orders", headers=bearer(customer))
        assert placed.json()["orderNumber"] in [order["orderNumber"] for order in listed.json()]


def test_another_instance_finds_a_product_created_just_now(
    catalog_service: HttpService, deployment: Deployment, admin_token: str
) -> None:
    reader = deployment.gateway("catalog", side="query", name="catalog-reader").start()
    try:
        for _ in range(5):
            product, _ = created(catalog_service.url, admin_token)
            found = get_product(reader.url, product["id"])
            assert found.status_code == 200, found.text
    finally:
        reader.stop()


@pytest.mark.usefixtures("order_saga")
def test_a_product_created_just_now_can_go_into_a_cart_at_once(
    orders_service: HttpService, catalog_service: HttpService, deployment: Deployment, admin_token: str
) -> None:
    customer = deployment.customer_token(new_customer_id())
    for _ in range(5):
        product, _ = created(catalog_service.url, admin_token, stock=5)
        added = add_to_cart(orders_service.url, customer, product["id"], 1)
        assert added.status_code == 200, added.text
