"""The order saga never drops a step and never lets one order hold the others, against real Kafka and
PostgreSQL: a catalog that stays down for one product's reservations (behind a proxy the test
controls) and a record nobody can decode go to the saga's dead letters while every other order is
confirmed; the operator's `retry` then takes the step once the catalog answers again."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from event_schemas import topics
from tests.support.catalog_client import created
from tests.support.deployment import Deployment
from tests.support.orders_client import add_to_cart, new_customer_id, place_order, replica_knows
from tests.support.processes import HttpService, ServiceProcess, free_port
from tests.support.servers import Servers
from tests.support.users_client import bearer
from tests.support.waiting import eventually

STEP_RETRY_SECONDS = 3.0
FORWARDED_HEADERS = ("authorization", "content-type", "x-correlation-id", "traceparent")


class FlakyCatalog:
    """Forwards the saga's calls to the real catalog, but answers 503 to every call about the
    products in `down`, as a catalog whose owner of those products' partition is down would."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.down: set[int] = set()
        self.port = free_port()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if json.loads(body or b"{}").get("productId") in flaky.down:
                    self._answer(503, b'{"message":"down for the test","error":"unavailable"}')
                    return
                headers = {
                    name: value for name, value in self.headers.items() if name.lower() in FORWARDED_HEADERS
                }
                answer = httpx.post(flaky.target + self.path, content=body, headers=headers, timeout=30)
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    deployment: Deployment
    catalog: HttpService
    orders: HttpService
    flaky: FlakyCatalog


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    deployment = Deployment(servers, tmp_path_factory.mktemp("saga-dead-letters"))
    deployment.provision()
    processes: list[ServiceProcess] = [
        deployment.projector("catalog", "catalog-search").start(),
        deployment.projector("orders-products", "orders-carts", "orders").start(),
    ]
    catalog = deployment.gateway("catalog").start()
    orders = deployment.gateway("orders").start()
    flaky = FlakyCatalog(catalog.url)
    saga = deployment.order_saga(
        flaky.url,
        orders.url,
        env={
            "COMMERCE_SAGA_STEP_RETRY_SECONDS": str(STEP_RETRY_SECONDS),
            "COMMERCE_SAGA_DEAD_LETTER_POLL_SECONDS": "0.5",
        },
    ).start()
    yield Stack(deployment, catalog, orders, flaky)
    flaky.server.shutdown()
    for process in (saga, orders, catalog, *processes):
        process.stop()


def an_order_of(stack: Stack, product_id: int) -> int:
    customer = stack.deployment.customer_token(new_customer_id())
    assert add_to_cart(stack.orders.url, customer, product_id, 1).status_code == 200
    placed = place_order(stack.orders.url, customer)
    assert placed.status_code == 200, placed.text
    return int(placed.json()["orderNumber"])


def status_of(stack: Stack, order_number: int) -> str | None:
    """The order's status as its writer has it. (Not the read model: the orders projector parks the
    partition of the record nobody can decode, as it should, so that partition's orders stop there.)"""
    answer = httpx.get(
        f"{stack.orders.url}/internal/orders/{order_number}",
        headers=bearer(stack.deployment.service_token()),
        timeout=30,
    )
    return str(answer.json()["status"]) if answer.status_code == 200 else None


async def produce_garbage(deployment: Deployment, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=deployment.servers.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.in_namespace(deployment.namespace, topics.ORDERS),
            b"\x00 not an event",
            key=key,
            headers=[("event_type", b"Garbage")],
        )
    finally:
        await producer.stop()


def test_an_order_whose_step_cannot_be_taken_waits_in_the_dead_letters_and_holds_no_other(
    stack: Stack,
) -> None:
    deployment = stack.deployment
    admin = deployment.admin_token()
    stuck_product = created(stack.catalog.url, admin, stock=10)[0]["id"]
    fine_product = created(stack.catalog.url, admin, stock=10)[0]["id"]
    for product_id in (stuck_product, fine_product):
        replica_knows(deployment, product_id)
    stack.flaky.down.add(stuck_product)

    asyncio.run(produce_garbage(deployment, b"order-999999001"))
    stuck_order = an_order_of(stack, stuck_product)
    others = [an_order_of(stack, fine_product) for _ in range(4)]
    eventually(
        lambda: all(status_of(stack, order_number) == "confirmed" for order_number in others),
        within=30,
        what="the other orders confirmed while one order's step is stuck",
    )
    assert status_of(stack, stuck_order) == "pending"

    def parked() -> str | None:
        answer = deployment.run_module("command_api.orders.saga_runner", "status", check=False)
        return answer.stdout if "reserve_stock" in answer.stdout and answer.returncode == 1 else None

    listed = eventually(parked, within=30, what="the stuck step in the saga's dead letters")
    assert "StepUnavailable" in listed
    assert "Garbage" in listed  # the record nobody can decode is kept, not a crash
    assert status_of(stack, stuck_order) == "pending"

    stack.flaky.down.clear()
    deployment.run_module("command_api.orders.saga_runner", "retry", "--all")
    eventually(
        lambda: status_of(stack, stuck_order) == "confirmed",
        within=30,
        what="the stuck order confirmed after the operator's retry",
    )
    still_open = deployment.run_module("command_api.orders.saga_runner", "status", check=False).stdout
    assert "reserve_stock" not in still_open
    assert "Garbage" in still_open  # retried and failed again: still the operator's
    deployment.run_module("command_api.orders.saga_runner", "skip", "--all")
    eventually(
        lambda: (
            deployment.run_module("command_api.orders.saga_runner", "status", check=False).returncode == 0
        ),
        within=30,
        what="every dead letter resolved",
    )
