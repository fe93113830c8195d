"""Payments through the Stripe adapter, against stripe-mock (Stripe's own API mock), in a deployment
of its own: Stripe tells the shop about payments by webhooks signed the way Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from event_schemas import topics
from event_schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.orders_client import add_to_cart, get_order, new_customer_id, order_settled, place_order
from tests.support.processes import HttpService, ServiceProcess
from tests.support.servers import Servers
from tests.support.users_client import bearer
from tests.support.waiting import eventually

WEBHOOK_SECRET = "whsec_test_" + "0" * 24  # a test endpoint's secret, not a real one


@dataclass
class StripeStack:
    deployment: Deployment
    catalog: HttpService
    orders: HttpService
    payments: HttpService


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeStack]:
    deployment = Deployment(servers, tmp_path_factory.mktemp("stripe"))
    deployment.provision()
    processes: list[ServiceProcess] = [
        deployment.projector("catalog", "catalog-search").start(),
        deployment.projector("orders-products", "orders-carts", "orders").start(),
        deployment.projector("payments-orders", "payments").start(),
    ]
    catalog = deployment.gateway("catalog").start()
    orders = deployment.gateway("orders").start()
    stripe_env = {
        "COMMERCE_STRIPE_SECRET_KEY": "sk_test_123",
        "COMMERCE_STRIPE_PUBLISHABLE_KEY": "pk_test_123",
        "COMMERCE_STRIPE_API_BASE": servers.stripe_mock_url,
        "COMMERCE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    payments = deployment.gateway("payments", env=stripe_env).start()
    saga = deployment.order_saga(catalog.url, orders.url).start()
    yield StripeStack(deployment, catalog, orders, payments)
    for process in (saga, payments, orders, catalog, *processes):
        process.stop()


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, str]:
    """The body and the Stripe-Signature header, computed the way Stripe signs a webhook."""
    payload = json.dumps(event).encode()
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={mac}"


def intent_event(kind: str, intent_id: str, order_number: int, amount: int, status: str) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": kind,
        "api_version": "2026-08-26.dahlia",
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "currency": "usd",
                "status": status,
                "metadata": {"orderNumber": str(order_number), "userId": "1"},
                "last_payment_error": None
                if status == "succeeded"
                else {"message": "Your card was declined."},
            }
        },
    }


def post_webhook(payments: HttpService, body: bytes, signature: str) -> httpx.Response:
    return httpx.post(
        f"{payments.url}/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


def test_a_purchase_paid_through_stripe_is_confirmed_by_a_signed_webhook_once(stack: StripeStack) -> None:
    deployment = stack.deployment
    product, _ = created(stack.catalog.url, deployment.admin_token(), stock=5, price="19.99")
    customer = deployment.customer_token(new_customer_id())
    assert add_to_cart(stack.orders.url, customer, product["id"], 2).status_code == 200
    order_number = int(place_order(stack.orders.url, customer).json()["orderNumber"])
    assert order_settled(stack.orders.url, customer, order_number)["status"] == "confirmed"

    created_payment = httpx.post(
        f"{stack.payments.url}/create-payment", json={"orderNumber": order_number}, headers=bearer(customer)
    )
    assert created_payment.status_code == 200, created_payment.text
    data = created_payment.json()["data"]
    assert (data["amount"], data["gateway"], data["pubKey"]) == (3998, "stripe", "pk_test_123")
    assert data["intentId"].startswith("pi_")

    bad_body, _ = signed(
        intent_event("payment_intent.succeeded", data["intentId"], order_number, 3998, "succeeded")
    )
    _, forged = signed({"forged": True}, secret="whsec_someone_else")
    assert post_webhook(stack.payments, bad_body, forged).status_code == 400
    stale_body, stale = signed(
        intent_event("payment_intent.succeeded", data["intentId"], order_number, 3998, "succeeded"),
        at=int(time.time()) - 3600,
    )
    assert post_webhook(stack.payments, stale_body, stale).status_code == 400

    body, signature = signed(
        intent_event("payment_intent.succeeded", data["intentId"], order_number, 3998, "succeeded")
    )
    for _ in range(3):  # Stripe retries a webhook until it gets a 2xx
        answered = post_webhook(stack.payments, body, signature)
        assert answered.status_code == 200, answered.text

    eventually(
        lambda: get_order(stack.orders.url, customer, order_number).json()["status"] == "paid",
        within=30,
        what="the order paid",
    )
    eventually(
        lambda: get_product(stack.catalog.url, product["id"]).json()["onHand"] == 3,
        within=30,
        what="the paid units out of stock",
    )
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    assert (
        sum(isinstance(event, PaymentSucceeded) and event.order_number == order_number for event, _ in log)
        == 1
    )

    # A refund made in Stripe's dashboard reaches the shop as charge.refunded: recorded once, money only.
    refunded = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": "charge.refunded",
        "api_version": "2026-08-26.dahlia",
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": "ch_test",
                "object": "charge",
                "payment_intent": data["intentId"],
                "amount": 3998,
                "amount_refunded": 1999,
                "refunded": False,
            }
        },
    }
    body, signature = signed(refunded)
    for _ in range(2):
        assert post_webhook(stack.payments, body, signature).status_code == 200

    def refunded_amount() -> str | None:
        order = get_order(stack.orders.url, customer, order_number).json()
        return str(order["refundedAmount"]) if order["refundedAmount"] != "0.00" else None

    assert eventually(refunded_amount, within=30, what="the dashboard refund on the order") == "19.99"
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    assert (
        sum(isinstance(event, PaymentRefunded) and event.order_number == order_number for event, _ in log)
        == 1
    )
    assert get_product(stack.catalog.url, product["id"]).json()["onHand"] == 3  # units unknown: stock stays


def test_a_payment_failed_webhook_cancels_the_order_and_returns_its_units(stack: StripeStack) -> None:
    deployment = stack.deployment
    product, _ = created(stack.catalog.url, deployment.admin_token(), stock=5, price="10.00")
    customer = deployment.customer_token(new_customer_id())
    assert add_to_cart(stack.orders.url, customer, product["id"], 3).status_code == 200
    order_number = int(place_order(stack.orders.url, customer).json()["orderNumber"])
    assert order_settled(stack.orders.url, customer, order_number)["status"] == "confirmed"
    data = httpx.post(
        f"{stack.payments.url}/create-payment", json={"orderNumber": order_number}, headers=bearer(customer)
    ).json()["data"]

    body, signature = signed(
        intent_event(
            "payment_intent.payment_failed", data["intentId"], order_number, 3000, "requires_payment_method"
        )
    )
    for _ in range(2):
        assert post_webhook(stack.payments, body, signature).status_code == 200
    eventually(
        lambda: get_order(stack.orders.url, customer, order_number).json()["status"] == "cancelled",
        within=30,
        what="the order cancelled",
    )
    eventually(
        lambda: get_product(stack.catalog.url, product["id"]).json()["stock"] == 5,
        within=30,
        what="the units back in stock",
    )
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    assert (
        sum(isinstance(event, PaymentFailed) and event.order_number == order_number for event, _ in log) == 1
    )
