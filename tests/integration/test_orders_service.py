"""The orders service against real Kafka and PostgreSQL: carts, orders, the reservation saga, and
customers who cannot see or touch each other's carts and orders."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from event_schemas import topics
from event_schemas.catalog import StockReleased, StockReservationRejected, StockReserved
from tests.support.catalog_client import created, get_product
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.orders_client import (
    add_to_cart,
    get_cart,
    get_order,
    new_customer_id,
    order_settled,
    place_order,
    replica_knows,
)
from tests.support.processes import HttpService, ServiceProcess
from tests.support.users_client import bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("order_saga")


@pytest.fixture
def customer(deployment: Deployment) -> str:
    return deployment.customer_token(new_customer_id())


def a_product(
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    stock: int = 10,
    price: str = "19.99",
) -> dict[str, Any]:
    product, _ = created(catalog_service.url, admin_token, stock=stock, price=price)
    replica_knows(deployment, product["id"])
    return product


def stock_of(catalog_service: HttpService, product_id: int, consistency: str | None = None) -> dict[str, Any]:
    response = get_product(catalog_service.url, product_id, consistency)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_product_added_twice_is_one_line_with_the_quantities_added(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    customer: str,
) -> None:
    product = a_product(catalog_service, deployment, admin_token, stock=10)
    first = add_to_cart(orders_service.url, customer, product["id"], 2)
    assert first.status_code == 200, first.text
    second = add_to_cart(orders_service.url, customer, product["id"], 3)
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["qty"] == 5

    cart = get_cart(orders_service.url, customer, second.headers["X-Consistency-Token"])
    assert cart.status_code == 200, cart.text
    [line] = cart.json()["lineItems"]
    assert line["productId"] == product["id"]
    assert line["qty"] == 5
    assert line["price"] == "19.99"
    assert line["availability"] == 10


def test_cart_requests_that_cannot_be_met_are_refused_clearly(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    customer: str,
) -> None:
    product = a_product(catalog_service, deployment, admin_token, stock=3)
    unknown = add_to_cart(orders_service.url, customer, 999_999_000 + 1, 1)
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"] == "product_not_found"
    too_many = add_to_cart(orders_service.url, customer, product["id"], 4)
    assert too_many.status_code == 409, too_many.text
    assert too_many.json()["error"] == "insufficient_stock"
    for qty in (0, -1, 1.5, "2"):
        bad = httpx.post(
            f"{orders_service.url}/cart",
            json={"productId": product["id"], "qty": qty},
            headers=bearer(customer),
        )
        assert bad.status_code == 422, (qty, bad.text)
    anonymous = httpx.post(f"{orders_service.url}/cart", json={"productId": product["id"], "qty": 1})
    assert anonymous.status_code == 401
    empty = place_order(orders_service.url, deployment.customer_token(new_customer_id()))
    assert empty.status_code == 409, empty.text
    assert empty.json()["error"] == "cart_empty"


def test_another_customers_lines_and_orders_are_not_found(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    customer: str,
) -> None:
    product = a_product(catalog_service, deployment, admin_token)
    line = add_to_cart(orders_service.url, customer, product["id"], 1).json()
    order = place_order(orders_service.url, customer)
    assert order.status_code == 200, order.text
    order_number = order.json()["orderNumber"]
    other = deployment.customer_token(new_customer_id())
    add_to_cart(orders_service.url, other, product["id"], 1)

    url = orders_service.url
    for response in (
        httpx.patch(f"{url}/cart/{line['id']}", json={"qty": 2}, headers=bearer(other)),
        httpx.delete(f"{url}/cart/{line['id']}", headers=bearer(other)),
        get_order(url, other, order_number, order.headers["X-Consistency-Token"]),
        httpx.get(f"{url}/order/{order_number}", headers=bearer(other)),
        httpx.get(f"{url}/orders/{order_number}/checkout", headers=bearer(other)),
        httpx.post(f"{url}/orders/{order_number}/cancel", headers=bearer(other)),
    ):
        assert response.status_code == 404, (response.request.url, response.text)
        assert str(order_number) not in response.text or "not found" in response.text
    others_orders = httpx.get(f"{url}/orders", headers=bearer(other)).json()
    assert all(o["orderNumber"] != order_number for o in others_orders)


def test_an_order_is_confirmed_once_its_stock_is_reserved_and_the_cart_is_empty(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    customer: str,
) -> None:
    first = a_product(catalog_service, deployment, admin_token, stock=5, price="0.10")
    second = a_product(catalog_service, deployment, admin_token, stock=5, price="19.99")
    add_to_cart(orders_service.url, customer, first["id"], 3)
    add_to_cart(orders_service.url, customer, second["id"], 1)
    placed = place_order(orders_service.url, customer)
    assert placed.status_code == 200, placed.text
    assert placed.json()["message"] == "Order created successfully"
    order_number = placed.json()["orderNumber"]

    order = order_settled(orders_service.url, customer, order_number)
    assert order["status"] == "confirmed"
    assert order["amount"] == "20.29"  # 3 x 0.10 + 19.99, exactly
    assert [line["qty"] for line in order["lineItems"]] == [3, 1]
    listed = httpx.get(f"{orders_service.url}/orders", headers=bearer(customer)).json()
    assert order_number in [o["orderNumber"] for o in listed]
    cart = get_cart(orders_service.url, customer, placed.headers["X-Consistency-Token"])
    assert cart.json()["lineItems"] == []
    assert stock_of(catalog_service, first["id"])["stock"] == 2
    assert stock_of(catalog_service, first["id"])["onHand"] == 5
    checkout = httpx.get(f"{orders_service.url}/orders/{order_number}/checkout", headers=bearer(customer))
    assert checkout.status_code == 200, checkout.text
    assert checkout.json()["amount"] == "20.29"


def test_an_order_with_one_short_line_is_rejected_and_leaves_every_stock_as_it_was(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    customer: str,
) -> None:
    plenty = a_product(catalog_service, deployment, admin_token, stock=10)
    scarce = a_product(catalog_service, deployment, admin_token, stock=2)
    add_to_cart(orders_service.url, customer, plenty["id"], 4)
    add_to_cart(orders_service.url, customer, scarce["id"], 2)
    # Someone else takes the scarce units first.
    rival = deployment.customer_token(new_customer_id())
    add_to_cart(orders_service.url, rival, scarce["id"], 2)
    assert (
        order_settled(
            orders_service.url, rival, place_order(orders_service.url, rival).json()["orderNumber"]
        )["status"]
        == "confirmed"
    )

    order = order_settled(
        orders_service.url, customer, place_order(orders_service.url, customer).json()["orderNumber"]
    )
    assert order["status"] == "rejected"
    assert "insufficient_stock" in (order["reason"] or "")

    def plenty_restored() -> bool:
        return bool(stock_of(catalog_service, plenty["id"])["stock"] == 10)

    eventually(plenty_restored, within=30, what="the first line's units released")
    assert stock_of(catalog_service, plenty["id"])["reserved"] == 0


def test_cancelling_a_confirmed_order_releases_its_stock(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
    customer: str,
) -> None:
    product = a_product(catalog_service, deployment, admin_token, stock=4)
    add_to_cart(orders_service.url, customer, product["id"], 3)
    order_number = place_order(orders_service.url, customer).json()["orderNumber"]
    assert order_settled(orders_service.url, customer, order_number)["status"] == "confirmed"
    cancelled = httpx.post(f"{orders_service.url}/orders/{order_number}/cancel", headers=bearer(customer))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = httpx.post(f"{orders_service.url}/orders/{order_number}/cancel", headers=bearer(customer))
    assert again.status_code == 200, again.text

    eventually(
        lambda: stock_of(catalog_service, product["id"])["stock"] == 4,
        within=30,
        what="cancelled units back in stock",
    )
    order = get_order(
        orders_service.url, customer, order_number, cancelled.headers["X-Consistency-Token"]
    ).json()
    assert [step["status"] for step in order["statusHistory"]] == ["pending", "confirmed", "cancelled"]


def test_two_hundred_buyers_for_the_last_ten_units_confirm_exactly_ten_orders(
    orders_service: HttpService, catalog_service: HttpService, deployment: Deployment, admin_token: str
) -> None:
    product = a_product(catalog_service, deployment, admin_token, stock=10)
    buyers = [deployment.customer_token(new_customer_id()) for _ in range(200)]
    for buyer in buyers:
        assert add_to_cart(orders_service.url, buyer, product["id"], 1).status_code == 200

    def buy(buyer: str) -> tuple[str, int]:
        response = place_order(orders_service.url, buyer)
        assert response.status_code == 200, response.text
        return buyer, int(response.json()["orderNumber"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        orders = list(pool.map(buy, buyers))
    statuses = [
        order_settled(orders_service.url, buyer, number, within=120)["status"] for buyer, number in orders
    ]
    assert statuses.count("confirmed") == 10, statuses
    assert statuses.count("rejected") == 190
    after = stock_of(catalog_service, product["id"])
    assert (after["stock"], after["reserved"], after["onHand"]) == (0, 10, 10)
    replica_knows(deployment, product["id"], stock=0)
    catalog_log = [
        event
        for event, _ in committed_events(
            deployment.servers.kafka_bootstrap, topics.in_namespace(deployment.namespace, topics.CATALOG)
        )
        if getattr(event, "product_id", None) == product["id"]
    ]
    assert sum(isinstance(event, StockReserved) for event in catalog_log) == 10
    assert sum(isinstance(event, StockReservationRejected) for event in catalog_log) == 190
    assert not any(isinstance(event, StockReleased) for event in catalog_log)
    assert min(event.stock for event in catalog_log if isinstance(event, StockReserved)) == 0
    with psycopg.connect(deployment.database_url("orders")) as conn:
        counted = conn.execute(
            "SELECT status, count(*) FROM orders WHERE order_number = ANY(%s) GROUP BY status",
            ([number for _, number in orders],),
        ).fetchall()
    assert dict(counted) == {"confirmed": 10, "rejected": 190}


def test_an_admin_lists_every_customers_orders_in_one_status_and_a_customer_may_not(
    orders_service: HttpService,
    catalog_service: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> None:
    first, second = (deployment.customer_token(new_customer_id()) for _ in range(2))
    product = a_product(catalog_service, deployment, admin_token, stock=10)
    numbers = []
    for customer in (first, second):
        add_to_cart(orders_service.url, customer, product["id"], 1)
        placed = place_order(orders_service.url, customer).json()["orderNumber"]
        assert order_settled(orders_service.url, customer, placed)["status"] == "confirmed"
        numbers.append(placed)
    cancelled = httpx.post(f"{orders_service.url}/orders/{numbers[1]}/cancel", headers=bearer(second))
    token = {"X-Consistency-Token": cancelled.headers["X-Consistency-Token"]}

    def listed(status: str) -> set[int]:
        answer = httpx.get(
            f"{orders_service.url}/orders",
            params={"scope": "all", "status": status, "limit": 100},
            headers=bearer(admin_token) | token,
        )
        assert answer.status_code == 200, answer.text
        assert {order["status"] for order in answer.json()} <= {status}
        return {order["orderNumber"] for order in answer.json()}

    assert numbers[0] in listed("confirmed") and numbers[1] not in listed("confirmed")
    assert numbers[1] in listed("cancelled")
    assert (
        httpx.get(
            f"{orders_service.url}/orders", params={"status": "shipped"}, headers=bearer(first)
        ).status_code
        == 422
    )
    refused = httpx.get(f"{orders_service.url}/orders", params={"scope": "all"}, headers=bearer(first))
    assert refused.status_code == 403


# Two open orders and five units at most per customer.
HOLDING_LIMITS = {"COMMERCE_MAX_OPEN_ORDERS_PER_CUSTOMER": "2", "COMMERCE_MAX_HELD_UNITS_PER_CUSTOMER": "5"}


@pytest.fixture
def limited(own_deployment: Deployment) -> Iterator[tuple[Deployment, HttpService, HttpService]]:
    """The catalog's command side and an orders command side with tight holding limits, in a deployment
    of their own (an instance forwards a command to its partition's owner, whose limits decide). No
    saga: the orders stay pending, which is open."""
    deployment = own_deployment
    catalog = deployment.gateway("catalog", side="command")
    orders = deployment.gateway("orders", side="command", env=HOLDING_LIMITS)
    processes: list[ServiceProcess] = [catalog, orders, deployment.projector("orders-products")]
    for process in processes:  # side by side: each takes seconds to start
        ServiceProcess.start(process)
    try:
        catalog.wait_healthy()
        orders.wait_healthy()
        yield deployment, catalog, orders
    finally:
        for process in processes:
            process.stop()


def test_a_customer_holds_no_more_open_orders_or_units_than_allowed_until_one_is_cancelled(
    limited: tuple[Deployment, HttpService, HttpService],
) -> None:
    deployment, catalog, orders = limited
    product, _ = created(catalog.url, deployment.admin_token(), stock=100)
    replica_knows(deployment, product["id"])
    customer = deployment.customer_token(new_customer_id())

    def ordered(token: str, qty: int) -> httpx.Response:
        assert add_to_cart(orders.url, token, product["id"], qty).status_code == 200
        return place_order(orders.url, token)

    first, second = ordered(customer, 1), ordered(customer, 1)
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    third = ordered(customer, 1)
    assert (third.status_code, third.json()["error"]) == (409, "too_many_open_orders"), third.text
    assert "(2): pay or cancel" in third.json()["message"]
    cancelled = httpx.post(
        f"{orders.url}/orders/{first.json()['orderNumber']}/cancel", headers=bearer(customer), timeout=30
    )
    assert cancelled.status_code == 200, cancelled.text
    again = place_order(orders.url, customer)  # the refused order's line is still in the cart
    assert again.status_code == 200, again.text

    buyer = deployment.customer_token(new_customer_id())
    too_big = add_to_cart(orders.url, buyer, product["id"], 6)
    assert (too_big.status_code, too_big.json()["error"]) == (409, "too_many_units_held"), too_big.text
    assert ordered(buyer, 3).status_code == 200
    over = ordered(buyer, 3)
    assert (over.status_code, over.json()["error"]) == (409, "too_many_units_held"), over.text
    assert "at most 5 units" in over.json()["message"]
