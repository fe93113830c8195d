"""A whole purchase over HTTP, as a shop's clients make it: register, an admin adds a product, a
customer fills the cart, orders, pays through the simulated gateway, and sees the order paid, with
the stock deducted in the catalog's read model and in its search index, and no secret in any log."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.catalog_client import created
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.users_client import bearer, new_email, register, token_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("order_saga")


def test_register_fill_the_cart_order_pay_and_see_it_paid_everywhere(
    users_service: HttpService,
    catalog_service: HttpService,
    orders_service: HttpService,
    payments_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    email = new_email()
    assert register(users_service.url, email=email).status_code == 201
    customer = token_for(users_service.url, email)
    name = f"Teapot {uuid.uuid4().hex[:8]}"
    product, _ = created(catalog_service.url, admin_token, name=name, price="24.50", stock=4)

    assert (
        httpx.post(
            f"{orders_service.url}/cart",
            json={"productId": product["id"], "qty": 3},
            headers=bearer(customer),
        ).status_code
        == 200
    )
    placed = httpx.post(f"{orders_service.url}/orders", headers=bearer(customer))
    assert placed.status_code == 200, placed.text
    order_number = placed.json()["orderNumber"]

    def order_status() -> str:
        return str(
            httpx.get(f"{orders_service.url}/orders/{order_number}", headers=bearer(customer)).json()[
                "status"
            ]
        )

    eventually(lambda: order_status() == "confirmed", within=30, what="the order confirmed")
    payment = httpx.post(
        f"{payments_service.url}/create-payment", json={"orderNumber": order_number}, headers=bearer(customer)
    )
    assert payment.status_code == 200, payment.text
    data = payment.json()["data"]
    assert data["amount"] == 7350
    confirmed = httpx.post(
        f"{payments_service.url}/simulated-gateway/payment_intents/{data['intentId']}/confirm",
        json={"clientSecret": data["secret"], "card": "4242424242424242"},
    )
    assert confirmed.json()["status"] == "succeeded"
    verified = httpx.post(
        f"{payments_service.url}/verify-payment/{data['intentId']}", headers=bearer(customer)
    )
    assert verified.json()["status"] == "succeeded", verified.text

    eventually(lambda: order_status() == "paid", within=30, what="the order paid")

    def catalog_row() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{catalog_service.url}/products/{product['id']}").json()
        return body

    eventually(
        lambda: catalog_row()["onHand"] == 1 and catalog_row()["stock"] == 1, within=30, what="stock deducted"
    )

    def indexed_stock() -> int | None:
        hits = httpx.get(f"{catalog_service.url}/products", params={"search": name}).json()
        found = [hit for hit in hits if hit["id"] == product["id"]]
        return found[0]["stock"] if found else None

    eventually(lambda: indexed_stock() == 1, within=30, what="stock deducted in the search index")
    for log in deployment.work_dir.glob("*.log"):
        assert data["secret"] not in log.read_text(errors="replace"), f"the client secret is in {log.name}"
