"""A whole purchase over HTTP with the simulated gateway, against real Kafka and PostgreSQL: the
payment is taken once, the order follows it, and the units leave stock (or return, if it fails)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from event_schemas import topics
from event_schemas.payments import PaymentInitiated, PaymentRefunded, PaymentSucceeded
from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.orders_client import add_to_cart, get_order, new_customer_id, order_settled, place_order
from tests.support.processes import HttpService
from tests.support.users_client import bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("order_saga")

PAYS = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"


def confirmed_order(
    orders: HttpService, catalog: HttpService, deployment: Deployment, admin_token: str, qty: int = 2
) -> tuple[str, int, int]:
    """A customer's token, a confirmed order of theirs, and the product it holds."""
    product, _ = created(catalog.url, admin_token, stock=5, price="19.99")
    customer = deployment.customer_token(new_customer_id())
    assert add_to_cart(orders.url, customer, product["id"], qty).status_code == 200
    order_number = int(place_order(orders.url, customer).json()["orderNumber"])
    assert order_settled(orders.url, customer, order_number)["status"] == "confirmed"
    return customer, order_number, int(product["id"])


def create_payment(payments: HttpService, token: str, order_number: int) -> httpx.Response:
    return httpx.post(
        f"{payments.url}/create-payment",
        json={"orderNumber": order_number},
        headers=bearer(token),
        timeout=30,
    )


def pay(payments: HttpService, data: dict[str, Any], card: str) -> None:
    confirmed = httpx.post(
        f"{payments.url}/simulated-gateway/payment_intents/{data['intentId']}/confirm",
        json={"clientSecret": data["secret"], "card": card},
    )
    assert confirmed.status_code == 200, confirmed.text


def payment_shown(payments: HttpService, token: str, order_number: int, status: str) -> dict[str, Any] | None:
    response = httpx.get(f"{payments.url}/payments/{order_number}", headers=bearer(token))
    body: dict[str, Any] | None = response.json() if response.status_code == 200 else None
    return body if body is not None and body["status"] == status else None


def stock(catalog: HttpService, product_id: int) -> tuple[int, int, int]:
    body = get_product(catalog.url, product_id).json()
    return body["stock"], body["reserved"], body["onHand"]


def test_a_paid_order_takes_the_units_out_of_stock_for_good_and_is_paid_once(
    payments_service: HttpService,
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    customer, order_number, product_id = confirmed_order(
        orders_service, catalog_service, deployment, admin_token
    )
    first = create_payment(payments_service, customer, order_number)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert first.json()["message"] == "Payment Successful"
    assert (data["amount"], data["currency"], data["order"]["amount"]) == (3998, "USD", "39.98")
    assert data["secret"] and data["pubKey"]
    again = create_payment(payments_service, customer, order_number).json()["data"]
    assert (again["intentId"], again["secret"]) == (data["intentId"], data["secret"])
    other = create_payment(payments_service, deployment.customer_token(new_customer_id()), order_number)
    assert other.status_code == 404, other.text

    pay(payments_service, data, PAYS)
    url = f"{payments_service.url}/verify-payment/{data['intentId']}"
    assert httpx.post(url, headers=bearer(deployment.customer_token(new_customer_id()))).status_code == 404
    for _ in range(2):
        verified = httpx.post(url, headers=bearer(customer))
        assert verified.status_code == 200, verified.text
        assert verified.json()["status"] == "succeeded"

    eventually(
        lambda: get_order(orders_service.url, customer, order_number).json()["status"] == "paid",
        within=30,
        what="the order paid",
    )
    eventually(lambda: stock(catalog_service, product_id) == (3, 0, 3), within=30, what="units out of stock")
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    mine = [event for event, _ in log if getattr(event, "order_number", None) == order_number]
    assert sum(isinstance(event, PaymentInitiated) for event in mine) == 1
    assert sum(isinstance(event, PaymentSucceeded) for event in mine) == 1
    assert all(data["secret"] not in str(event.model_dump()) for event in mine)
    shown = eventually(
        lambda: payment_shown(payments_service, customer, order_number, "succeeded"),
        within=30,
        what="the payment in the payments read model",
    )
    assert (shown["amountMinor"], shown["intentId"], shown["gateway"]) == (
        3998,
        data["intentId"],
        "simulated",
    )
    assert data["secret"] not in str(shown)
    someone_else = httpx.get(
        f"{payments_service.url}/payments/{order_number}",
        headers=bearer(deployment.customer_token(new_customer_id())),
    )
    assert someone_else.status_code == 404
    paid_already = create_payment(payments_service, customer, order_number)
    assert paid_already.status_code == 409, paid_already.text
    assert paid_already.json()["error"] == "order_not_payable"


def test_a_declined_payment_cancels_the_order_and_returns_its_units(
    payments_service: HttpService,
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    customer, order_number, product_id = confirmed_order(
        orders_service, catalog_service, deployment, admin_token
    )
    assert stock(catalog_service, product_id) == (3, 2, 5)
    data = create_payment(payments_service, customer, order_number).json()["data"]
    pay(payments_service, data, DECLINED)
    verified = httpx.post(
        f"{payments_service.url}/verify-payment/{data['intentId']}", headers=bearer(customer)
    )
    assert verified.json()["status"] == "failed", verified.text
    eventually(
        lambda: get_order(orders_service.url, customer, order_number).json()["status"] == "cancelled",
        within=30,
        what="the order cancelled",
    )
    eventually(lambda: stock(catalog_service, product_id) == (5, 0, 5), within=30, what="units back in stock")
    refused = create_payment(payments_service, customer, order_number)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "order_not_payable"


def test_only_a_confirmed_order_of_ones_own_can_be_paid(
    payments_service: HttpService, deployment: Deployment
) -> None:
    customer = deployment.customer_token(new_customer_id())
    missing = create_payment(payments_service, customer, 999_999_000 + 4)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"] == "order_not_found"
    bad = httpx.post(
        f"{payments_service.url}/create-payment", json={"orderNumber": "x"}, headers=bearer(customer)
    )
    assert bad.status_code == 422
    assert httpx.post(f"{payments_service.url}/create-payment", json={"orderNumber": 1}).status_code == 401


def test_a_refund_gives_money_back_once_and_its_units_return_to_stock(
    payments_service: HttpService,
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    customer, order_number, product_id = confirmed_order(
        orders_service, catalog_service, deployment, admin_token
    )
    data = create_payment(payments_service, customer, order_number).json()["data"]
    pay(payments_service, data, PAYS)
    assert (
        httpx.post(
            f"{payments_service.url}/verify-payment/{data['intentId']}", headers=bearer(customer)
        ).json()["status"]
        == "succeeded"
    )
    eventually(lambda: stock(catalog_service, product_id) == (3, 0, 3), within=30, what="units out of stock")

    url = f"{payments_service.url}/refunds"
    one = {"orderNumber": order_number, "lines": [{"productId": product_id, "qty": 1}]}
    assert httpx.post(url, json=one, headers=bearer(customer)).status_code == 403
    partly = httpx.post(url, json=one, headers=bearer(admin_token))
    assert partly.status_code == 200, partly.text
    assert (partly.json()["amount"], partly.json()["refundedTotal"]) == (1999, 1999)
    eventually(
        lambda: stock(catalog_service, product_id) == (4, 0, 4), within=30, what="one unit back in stock"
    )
    too_many = httpx.post(
        url,
        json={"orderNumber": order_number, "lines": [{"productId": product_id, "qty": 2}]},
        headers=bearer(admin_token),
    )
    assert too_many.status_code == 409, too_many.text
    rest = httpx.post(url, json={"orderNumber": order_number}, headers=bearer(admin_token))
    assert rest.status_code == 200, rest.text
    assert rest.json()["refundedTotal"] == 3998
    assert httpx.post(url, json={"orderNumber": order_number}, headers=bearer(admin_token)).status_code == 409

    eventually(
        lambda: stock(catalog_service, product_id) == (5, 0, 5), within=30, what="every unit back in stock"
    )

    def refunded() -> dict[str, Any] | None:
        order: dict[str, Any] = get_order(orders_service.url, customer, order_number).json()
        return order if order["status"] == "refunded" else None

    assert eventually(refunded, within=30, what="the order refunded")["refundedAmount"] == "39.98"
    payment = httpx.get(f"{payments_service.url}/payments/{order_number}", headers=bearer(admin_token)).json()
    assert (payment["status"], payment["refundedMinor"], len(payment["refunds"])) == ("refunded", 3998, 2)
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    assert sum(isinstance(e, PaymentRefunded) and e.order_number == order_number for e, _ in log) == 2
