"""The order saga against real Kafka and PostgreSQL, in a deployment of its own: every line is
reserved exactly once and released exactly once although the saga is killed mid-step, and unpaid
orders expire at their deadline."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from event_schemas import topics
from event_schemas.catalog import StockReleased, StockReserved
from event_schemas.orders import OrderConfirmed, OrderExpired, OrderPlaced
from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.orders_client import add_to_cart, get_order, new_customer_id, place_order, replica_knows
from tests.support.processes import HttpService, ServiceProcess
from tests.support.servers import Servers
from tests.support.users_client import bearer
from tests.support.waiting import eventually

PAYMENT_WINDOW = 4.0


@dataclass
class SagaStack:
    deployment: Deployment
    catalog: HttpService
    orders: HttpService
    payments: HttpService
    saga: ServiceProcess

    def restart_saga(self) -> None:
        self.saga = self.deployment.order_saga(self.catalog.url, self.orders.url, self.payments.url).start()


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SagaStack]:
    deployment = Deployment(
        servers, tmp_path_factory.mktemp("saga"), order_payment_window_seconds=PAYMENT_WINDOW
    )
    deployment.provision()
    processes: list[ServiceProcess] = [
        deployment.projector("catalog", "catalog-search").start(),
        deployment.projector("orders-products", "orders-carts", "orders").start(),
        deployment.projector("payments-orders", "payments").start(),
    ]
    catalog = deployment.gateway("catalog").start()
    orders = deployment.gateway("orders").start()
    payments = deployment.gateway("payments").start()
    saga = deployment.order_saga(catalog.url, orders.url, payments.url).start()
    running = SagaStack(deployment, catalog, orders, payments, saga)
    yield running
    for process in (running.saga, payments, orders, catalog, *processes):
        process.stop()


def test_killed_mid_step_the_saga_reserves_and_releases_every_line_exactly_once(stack: SagaStack) -> None:
    deployment = stack.deployment
    admin = deployment.admin_token()
    products = [created(stack.catalog.url, admin, stock=1_000)[0]["id"] for _ in range(4)]
    for product_id in products:
        replica_knows(deployment, product_id)
    buyers = [deployment.customer_token(new_customer_id()) for _ in range(50)]
    wanted: dict[str, dict[int, int]] = {}
    lines = {buyer: random.sample(products, k=random.randint(1, 3)) for buyer in buyers}
    for buyer, chosen in lines.items():
        for product_id in chosen:
            assert add_to_cart(stack.orders.url, buyer, product_id, random.randint(1, 5)).status_code == 200

    def buy(buyer: str) -> int:
        response = place_order(stack.orders.url, buyer)
        assert response.status_code == 200, response.text
        return int(response.json()["orderNumber"])

    placing_done = threading.Event()

    def kill_now_and_then() -> None:
        for _ in range(4):
            time.sleep(random.uniform(0.2, 1.5))
            stack.saga.kill()
            time.sleep(random.uniform(0.0, 0.5))
            stack.restart_saga()
            if placing_done.is_set():
                break

    killer = threading.Thread(target=kill_now_and_then)
    killer.start()
    with ThreadPoolExecutor(max_workers=10) as pool:
        order_numbers = list(pool.map(buy, buyers))
    placing_done.set()
    killer.join()
    orders_topic = topics.in_namespace(deployment.namespace, topics.ORDERS)
    placed = {
        event.order_number: event
        for event, _ in committed_events(deployment.servers.kafka_bootstrap, orders_topic)
        if isinstance(event, OrderPlaced)
    }
    for number in order_numbers:
        wanted[f"order-{number}"] = {line.product_id: line.qty for line in placed[number].lines}

    catalog_topic = topics.in_namespace(deployment.namespace, topics.CATALOG)

    def everything_released() -> Counter[tuple[str, int]] | None:
        released = Counter(
            (event.order_id, event.product_id)
            for event, _ in committed_events(deployment.servers.kafka_bootstrap, catalog_topic)
            if isinstance(event, StockReleased)
        )
        return released if sum(released.values()) >= sum(len(lines) for lines in wanted.values()) else None

    released = eventually(
        everything_released, within=120, what="every order expired and its stock released", every=1
    )
    catalog_log = [event for event, _ in committed_events(deployment.servers.kafka_bootstrap, catalog_topic)]
    reserved = Counter((e.order_id, e.product_id) for e in catalog_log if isinstance(e, StockReserved))
    expected = Counter({(order, product): 1 for order, lines in wanted.items() for product in lines})
    assert reserved == expected, "every line reserved exactly once"
    assert released == expected, "every line released exactly once"
    orders_log = [event for event, _ in committed_events(deployment.servers.kafka_bootstrap, orders_topic)]
    assert Counter(e.order_number for e in orders_log if isinstance(e, OrderConfirmed)) == Counter(
        order_numbers
    )
    assert Counter(e.order_number for e in orders_log if isinstance(e, OrderExpired)) == Counter(
        order_numbers
    )

    # The read model follows the log: the last releases may still be on their way to it.
    def all_stock_back() -> bool:
        return all(get_product(stack.catalog.url, product).json()["stock"] == 1_000 for product in products)

    eventually(all_stock_back, within=30, what="every product's stock back to 1,000 in the read model")
    # Released because the order expired, never before (a repeated report must not free a confirmed
    # order's units).
    expired_at = {f"order-{e.order_number}": e.occurred_at for e in orders_log if isinstance(e, OrderExpired)}
    assert all(
        event.occurred_at >= expired_at[event.order_id]
        for event in catalog_log
        if isinstance(event, StockReleased)
    )


def order_status(stack: SagaStack, token: str, order_number: int) -> str:
    return str(get_order(stack.orders.url, token, order_number).json().get("status"))


def test_an_unpaid_order_expires_at_its_deadline_and_its_stock_returns(stack: SagaStack) -> None:
    deployment = stack.deployment
    product_id = created(stack.catalog.url, deployment.admin_token(), stock=3)[0]["id"]
    replica_knows(deployment, product_id)
    buyer = deployment.customer_token(new_customer_id())
    add_to_cart(stack.orders.url, buyer, product_id, 3)
    order_number = place_order(stack.orders.url, buyer).json()["orderNumber"]

    def status() -> str:
        return str(get_order(stack.orders.url, buyer, order_number).json().get("status"))

    eventually(
        lambda: get_product(stack.catalog.url, product_id).json()["stock"] == 0, within=30, what="units held"
    )
    started = time.monotonic()
    eventually(lambda: status() == "expired", within=PAYMENT_WINDOW + 30, what="order expired")
    assert time.monotonic() - started >= PAYMENT_WINDOW - 1.5
    eventually(
        lambda: get_product(stack.catalog.url, product_id).json()["stock"] == 3, within=30, what="stock back"
    )


def test_a_payment_that_succeeds_after_its_order_expired_is_refunded_in_full(stack: SagaStack) -> None:
    deployment = stack.deployment
    product_id = created(stack.catalog.url, deployment.admin_token(), stock=3)[0]["id"]
    replica_knows(deployment, product_id)
    buyer = deployment.customer_token(new_customer_id())
    add_to_cart(stack.orders.url, buyer, product_id, 2)
    order_number = place_order(stack.orders.url, buyer).json()["orderNumber"]
    eventually(
        lambda: order_status(stack, buyer, order_number) == "confirmed", within=30, what="order confirmed"
    )
    data = httpx.post(
        f"{stack.payments.url}/create-payment", json={"orderNumber": order_number}, headers=bearer(buyer)
    ).json()["data"]
    eventually(
        lambda: order_status(stack, buyer, order_number) == "expired",
        within=PAYMENT_WINDOW + 30,
        what="expired",
    )
    httpx.post(
        f"{stack.payments.url}/simulated-gateway/payment_intents/{data['intentId']}/confirm",
        json={"clientSecret": data["secret"], "card": "4242424242424242"},
    )
    verified = httpx.post(f"{stack.payments.url}/verify-payment/{data['intentId']}", headers=bearer(buyer))
    assert verified.json()["status"] == "succeeded", verified.text

    def refunded() -> dict[str, Any] | None:
        response = httpx.get(f"{stack.payments.url}/payments/{order_number}", headers=bearer(buyer))
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == "refunded" else None

    payment = eventually(refunded, within=30, what="the late payment refunded")
    assert payment["refundedMinor"] == payment["amountMinor"] == 3998
    assert order_status(stack, buyer, order_number) == "expired"
    assert (
        get_product(stack.catalog.url, product_id).json()["stock"] == 3
    )  # released once, not returned again
