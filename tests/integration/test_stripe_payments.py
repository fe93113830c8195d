"""Payments through the Stripe adapter, against stripe-mock (Stripe's own API mock), in a deployment
of its own whose payments service runs in production mode: Stripe tells the shop about payments by
webhooks signed the way Stripe signs them, and nobody pays with the simulated gateway's test cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from event_schemas import topics
from event_schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.edge import EdgeProcess, address
from tests.support.kafka_log import committed_events
from tests.support.orders_client import add_to_cart, get_order, new_customer_id, order_settled, place_order
from tests.support.processes import HttpService, ServiceProcess, free_port
from tests.support.servers import REPO, Servers
from tests.support.stripe_webhooks import intent_event, refund_event
from tests.support.stripe_webhooks import signed as signed_with
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
        "COMMERCE_ENVIRONMENT": "production",
        "COMMERCE_STRIPE_SECRET_KEY": "sk_test_123",
        "COMMERCE_STRIPE_PUBLISHABLE_KEY": "pk_test_123",
        "COMMERCE_STRIPE_API_BASE": servers.stripe_mock_url,
        "COMMERCE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    payments = deployment.gateway("payments", env=stripe_env).start()
    saga = deployment.order_saga(catalog.url, orders.url, payments.url).start()
    yield StripeStack(deployment, catalog, orders, payments)
    for process in (saga, payments, orders, catalog, *processes):
        process.stop()


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, str]:
    return signed_with(event, secret, at)


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

    # An admin's refund, then Stripe's report of that same refund, then a refund made in Stripe's
    # dashboard: each recorded once, by Stripe's refund id, whoever reports it first.
    admin_refund = httpx.post(
        f"{stack.payments.url}/refunds",
        json={"orderNumber": order_number, "lines": [{"productId": product["id"], "qty": 1}]},
        headers=bearer(deployment.admin_token()),
    )
    assert admin_refund.status_code == 200, admin_refund.text
    assert admin_refund.json()["refundedTotal"] == 1999
    reported, reported_signature = signed(
        refund_event("refund.created", admin_refund.json()["refundId"], data["intentId"], 1999)
    )
    dashboard, dashboard_signature = signed(
        refund_event("charge.refund.updated", "re_from_the_dashboard", data["intentId"], 1999)
    )
    for _ in range(2):
        assert post_webhook(stack.payments, reported, reported_signature).status_code == 200
        assert post_webhook(stack.payments, dashboard, dashboard_signature).status_code == 200

    def refunded_amount() -> str | None:
        order = get_order(stack.orders.url, customer, order_number).json()
        return str(order["refundedAmount"]) if order["refundedAmount"] == "39.98" else None

    assert eventually(refunded_amount, within=30, what="both refunds on the order") == "39.98"
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    refunds = [e for e, _ in log if isinstance(e, PaymentRefunded) and e.order_number == order_number]
    assert sorted(refund.amount_minor for refund in refunds) == [1999, 1999]
    # The admin's line came back to stock; the dashboard's refund names no units, so stock stays.
    eventually(
        lambda: get_product(stack.catalog.url, product["id"]).json()["onHand"] == 4,
        within=30,
        what="the admin's refunded unit back in stock",
    )


def test_a_payment_failed_webhook_leaves_the_order_payable_until_a_later_success(stack: StripeStack) -> None:
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
        lambda: (
            httpx.get(f"{stack.payments.url}/payments/{order_number}", headers=bearer(customer))
            .json()
            .get("status")
            == "failed"
        ),
        within=30,
        what="the decline recorded",
    )
    assert get_order(stack.orders.url, customer, order_number).json()["status"] == "confirmed"
    body, signature = signed(
        intent_event("payment_intent.succeeded", data["intentId"], order_number, 3000, "succeeded")
    )
    assert post_webhook(stack.payments, body, signature).status_code == 200
    eventually(
        lambda: get_order(stack.orders.url, customer, order_number).json()["status"] == "paid",
        within=30,
        what="the order paid after the decline",
    )
    log = committed_events(
        deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.PAYMENTS)
    )
    assert sum(isinstance(e, PaymentFailed) and e.order_number == order_number for e, _ in log) == 1


CONFIRM = "/simulated-gateway/payment_intents/{intent_id}/confirm"


def payments_started_in_production(
    deployment: Deployment, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m gateway payments` in production mode with these settings, run until it exits (a
    service that starts instead runs into the timeout, and the test fails)."""
    production = {
        "COMMERCE_ENVIRONMENT": "production",
        "COMMERCE_STRIPE_SECRET_KEY": "",
        "COMMERCE_PAYMENT_GATEWAY": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", "payments", "--port", str(free_port())],
        cwd=REPO,
        env={**os.environ, **deployment.env, **production, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {},
            "payments: COMMERCE_STRIPE_SECRET_KEY is not set: in production the payments service never falls back",
        ),
        (
            {"COMMERCE_PAYMENT_GATEWAY": "simulated", "COMMERCE_STRIPE_SECRET_KEY": "sk_test_123"},
            "payments: COMMERCE_PAYMENT_GATEWAY=simulated is refused in production",
        ),
    ],
    ids=["without a Stripe key", "with the simulated gateway named"],
)
def test_in_production_the_payments_service_refuses_to_start_without_stripe(
    stack: StripeStack, env: dict[str, str], message: str
) -> None:
    refused = payments_started_in_production(stack.deployment, env)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].startswith(message), refused.stderr


def test_in_production_the_simulated_gateways_confirm_route_is_not_served(stack: StripeStack) -> None:
    path = CONFIRM.format(intent_id="pi_123")
    card = {"clientSecret": "pi_123_secret_456", "card": "4242 4242 4242 4242"}
    answered = httpx.post(f"{stack.payments.url}{path}", json=card)
    assert answered.status_code == 404, answered.text
    assert answered.json() == {"message": "Not Found", "error": "not_found"}
    assert CONFIRM not in httpx.get(f"{stack.payments.url}/openapi.json").json()["paths"]

    edge = EdgeProcess(
        "production-edge",
        {"payments": [address(stack.payments.url)]},
        stack.deployment.work_dir,
        "production",
    ).start()
    try:
        at_the_edge = httpx.post(f"{edge.url}{path}", json=card)
        assert at_the_edge.status_code == 404, at_the_edge.text
        assert at_the_edge.json() == {"message": "Not Found", "error": "not_found"}
        # nginx answered that itself: the request never reached an instance (its log names no upstream).
        logged = eventually(
            lambda: [entry for entry in map(json.loads, edge.access_log()) if entry["uri"] == path],
            within=5,
            what="the refused confirm in the edge's access log",
        )
        assert [entry["upstream"] for entry in logged] == [""]
        # The payments service's own routes still pass: its answer (no token), not the edge's.
        anonymous = httpx.post(f"{edge.url}/create-payment", json={"orderNumber": 1})
        assert anonymous.status_code == 401, anonymous.text
    finally:
        edge.stop()
