"""HTTP helpers for the orders service, and waits on the orders side's read models."""

from __future__ import annotations

import itertools
import random
from typing import Any

import httpx
import psycopg

from tests.support.deployment import Deployment
from tests.support.users_client import bearer
from tests.support.waiting import eventually

_customer_numbers = itertools.count(random.randrange(1, 10**6) * 1000)


def new_customer_id() -> int:
    """A customer id no other test uses (the orders side takes the customer from the token)."""
    return next(_customer_numbers) + 1


def add_to_cart(base_url: str, token: str, product_id: int, qty: int, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/cart",
        json={"productId": product_id, "qty": qty},
        headers=bearer(token) | headers,
        timeout=30,
    )


def get_cart(base_url: str, token: str, consistency: str | None = None) -> httpx.Response:
    headers = {"X-Consistency-Token": consistency} if consistency else {}
    return httpx.get(f"{base_url}/cart", headers=bearer(token) | headers, timeout=30)


def place_order(base_url: str, token: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{base_url}/orders", headers=bearer(token) | headers, timeout=30)


def get_order(base_url: str, token: str, order_number: int, consistency: str | None = None) -> httpx.Response:
    headers = {"X-Consistency-Token": consistency} if consistency else {}
    return httpx.get(f"{base_url}/orders/{order_number}", headers=bearer(token) | headers, timeout=30)


def replica_knows(deployment: Deployment, product_id: int, stock: int | None = None) -> None:
    """Wait until the orders side's replica of the catalog has the product (at that stock, if given)."""

    def probe() -> bool | None:
        with psycopg.connect(deployment.database_url("orders")) as conn:
            if conn.execute("SELECT to_regclass('catalog_products')").fetchone() == (None,):
                return None
            row = conn.execute("SELECT stock FROM catalog_products WHERE id = %s", (product_id,)).fetchone()
        return True if row is not None and (stock is None or row[0] == stock) else None

    eventually(probe, within=30, what=f"product {product_id} in the orders side's replica")


def order_settled(base_url: str, token: str, order_number: int, within: float = 60) -> dict[str, Any]:
    """The order once the saga has decided it (no longer pending)."""

    def probe() -> dict[str, Any] | None:
        response = get_order(base_url, token, order_number)
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if body["status"] != "pending" else None

    return eventually(probe, within=within, what=f"order {order_number} confirmed or rejected")
