"""A whole purchase over HTTP with the simulated gateway, against real Kafka and PostgreSQL: the
payment is taken once, the order follows it, and the units leave stock; a declined card leaves the
order payable, and a payment the order can no longer take is refunded."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from event_schemas import topics
from event_schemas.payments import PaymentInitiated, PaymentRefunded, PaymentSucceeded
from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.orders_client import add_to_cart, get_order, new_customer_id, order_settled, place_order
from tests.support.processes import HttpService, wait_until_partitions_split
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


def verify(payments: HttpService, token: str, intent_id: str) -> dict[str, Any]:
    verified = httpx.post(f"{payments.url}/verify-payment/{intent_id}", headers=bearer(token), timeout=30)
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body


def test_a_declined_card_leaves_the_order_payable_and_a_good_card_on_the_same_intent_pays_it(
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
    declined = verify(payments_service, customer, data["intentId"])
    assert (declined["status"], declined["intentStatus"], declined["failure"]) == (
        "failed",
        "requires_payment_method",
        "Your card was declined.",
    )
    eventually(
        lambda: payment_shown(payments_service, customer, order_number, "failed"),
        within=30,
        what="the decline in the payments read model",
    )
    again = create_payment(payments_service, customer, order_number)
    assert again.status_code == 200, again.text
    assert again.json()["data"]["intentId"] == data["intentId"]
    assert get_order(orders_service.url, customer, order_number).json()["status"] == "confirmed"

    pay(payments_service, data, PAYS)
    paid = verify(payments_service, customer, data["intentId"])
    assert (paid["status"], paid["intentStatus"], paid["failure"]) == ("succeeded", "succeeded", None)
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
    assert [type(event).__name__ for event in mine] == [
        "PaymentInitiated",
        "PaymentFailed",
        "PaymentSucceeded",
    ]


def test_a_success_the_order_can_no_longer_take_is_refunded_once_and_no_units_come_back(
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
    pay(payments_service, data, DECLINED)
    assert verify(payments_service, customer, data["intentId"])["status"] == "failed"
    cancelled = httpx.post(f"{orders_service.url}/orders/{order_number}/cancel", headers=bearer(customer))
    assert cancelled.status_code == 200, cancelled.text
    eventually(lambda: stock(catalog_service, product_id) == (5, 0, 5), within=30, what="units back in stock")
    # The customer's browser still had the card form open on the same intent.
    pay(payments_service, data, PAYS)
    assert verify(payments_service, customer, data["intentId"])["status"] == "succeeded"
    refunded = eventually(
        lambda: payment_shown(payments_service, customer, order_number, "refunded"),
        within=30,
        what="the late payment refunded",
    )
    assert (refunded["refundedMinor"], len(refunded["refunds"])) == (3998, 1)
    assert get_order(orders_service.url, customer, order_number).json()["status"] == "cancelled"
    # An admin's refund of what is left finds nothing, and no unit comes back twice.
    again = httpx.post(
        f"{payments_service.url}/refunds", json={"orderNumber": order_number}, headers=bearer(admin_token)
    )
    assert again.status_code == 409, again.text
    assert stock(catalog_service, product_id) == (5, 0, 5)


def test_an_idempotency_key_of_create_payment_answers_its_first_request_and_is_its_orders_own(
    payments_service: HttpService,
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    customer, first_order, _ = confirmed_order(orders_service, catalog_service, deployment, admin_token)
    product, _ = created(catalog_service.url, admin_token, stock=5, price="5.00")
    assert add_to_cart(orders_service.url, customer, product["id"], 1).status_code == 200
    second_order = int(place_order(orders_service.url, customer).json()["orderNumber"])
    assert order_settled(orders_service.url, customer, second_order)["status"] == "confirmed"
    key = {"Idempotency-Key": f"pay-{first_order}"}

    def keyed(order_number: int) -> httpx.Response:
        return httpx.post(
            f"{payments_service.url}/create-payment",
            json={"orderNumber": order_number},
            headers=bearer(customer) | key,
            timeout=30,
        )

    first = keyed(first_order)
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    replay = keyed(first_order)
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["data"]["intentId"] == first.json()["data"]["intentId"]
    # A key is the order's own: for another order it is that order's first request, with its own intent.
    other = keyed(second_order)
    assert other.status_code == 200, other.text
    assert "Idempotent-Replayed" not in other.headers
    assert other.json()["data"]["intentId"] != first.json()["data"]["intentId"]


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
    assert verify(payments_service, customer, data["intentId"])["status"] == "succeeded"
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


def test_reconciliation_finds_a_capture_the_log_missed_and_repairs_it(
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
    # The customer paid, and neither verify-payment nor a webhook ever told the shop.
    pay(payments_service, data, PAYS)
    found = deployment.run_module("payments", "reconcile", check=False)
    mine = [line for line in found.stdout.splitlines() if data["intentId"] in line]
    assert [line.split()[0] for line in mine] == ["captured_not_recorded"], found.stdout + found.stderr
    assert found.returncode == 1
    repaired = deployment.run_module(
        "payments", "reconcile", "--repair", "--payments-url", payments_service.url, check=False
    )
    assert f"order {order_number}: 200" in repaired.stdout, repaired.stdout + repaired.stderr
    eventually(
        lambda: get_order(orders_service.url, customer, order_number).json()["status"] == "paid",
        within=30,
        what="the order paid once the log caught up with the gateway",
    )
    eventually(lambda: stock(catalog_service, product_id) == (3, 0, 3), within=30, what="units out of stock")
    again = deployment.run_module("payments", "reconcile", check=False)
    assert data["intentId"] not in again.stdout, again.stdout


def test_create_payment_with_a_key_succeeds_on_either_of_two_instances(
    orders_service: HttpService,
    catalog_service: HttpService,
    payments_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    """A keyed create-payment claims its key and initiates the payment in one request: both must live
    in one partition, or, with two instances, half the orders could never be paid (503
    `partition_moving` for as long as the customer retried, as the storefront keys every command)."""
    second = deployment.gateway("payments", name="payments-second").start()
    partitions = deployment.settings.kafka_partitions
    try:
        wait_until_partitions_split("payments", [payments_service, second], partitions, admin_token)
        for _ in range(6):
            customer, order_number, _ = confirmed_order(
                orders_service, catalog_service, deployment, admin_token
            )
            for instance in (payments_service, second):
                answer = httpx.post(
                    f"{instance.url}/create-payment",
                    json={"orderNumber": order_number},
                    headers=bearer(customer) | {"Idempotency-Key": str(uuid.uuid4())},
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
    finally:
        second.stop()
        wait_until_partitions_split("payments", [payments_service], partitions, admin_token)
