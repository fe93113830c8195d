"""A purchase up to the payment, over HTTP: what tests of payments and of access to them start from.
The order saga must be running (it confirms the order)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.catalog_client import created
from tests.support.orders_client import add_to_cart, order_settled, place_order
from tests.support.users_client import bearer


def confirmed_order(
    orders_url: str, catalog_url: str, admin_token: str, customer_token: str, qty: int = 1
) -> tuple[int, int]:
    """A confirmed order of the customer's, and the product it holds units of."""
    product, _ = created(catalog_url, admin_token, stock=100, price="19.99")
    added = add_to_cart(orders_url, customer_token, product["id"], qty)
    assert added.status_code == 200, added.text
    placed = place_order(orders_url, customer_token)
    assert placed.status_code == 200, placed.text
    order_number = int(placed.json()["orderNumber"])
    assert order_settled(orders_url, customer_token, order_number)["status"] == "confirmed"
    return order_number, int(product["id"])


def payment_started(payments_url: str, customer_token: str, order_number: int) -> dict[str, Any]:
    """`create-payment`'s data for the order: its intent id and client secret among them."""
    answered = httpx.post(
        f"{payments_url}/create-payment",
        json={"orderNumber": order_number},
        headers=bearer(customer_token),
        timeout=30,
    )
    assert answered.status_code == 200, answered.text
    data: dict[str, Any] = answered.json()["data"]
    return data
