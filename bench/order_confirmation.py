"""How soon a placed order is confirmed. Customers, a fixed number at a time, each put one product in a
cart and place an order, then wait for its decision before the next customer starts; a reader of the
orders topic notes when it reads each order's OrderConfirmed.

What is measured: from `POST /orders` answered (and from it sent) until OrderConfirmed is committed in
Kafka and fetched by that reader (read_committed, in the bench's process, on the same clock). That is
the saga's whole way (read OrderPlaced, reserve in the catalog, record the reservations in the order),
plus one fetch; the orders read model (`GET /orders/{n}`) shows "confirmed" a projection later. The
reader is a plain consumer without a group: it sends no request to the services and moves no one's
offsets, where polling `GET /orders/{n}` would add load to the gateway the saga writes through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import aiohttp
import psycopg
import psycopg_pool
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.client import send, session
from event_schemas.orders import OrderConfirmed, OrderRejected
from event_schemas.registry import EVENT_TYPE_HEADER, REGISTRY
from read_models.orders_replica import products_by_id
from read_models.pool import make_pool

DECISIONS = {OrderConfirmed.event_type.encode(), OrderRejected.event_type.encode()}
# A decision slower than this is counted as a failure rather than waited for.
DECISION_WAIT = 60.0


@dataclass(frozen=True)
class Decision:
    status: Literal["confirmed", "rejected"]
    read_at: float  # time.perf_counter() when the reader got the event


class OrderDecisions:
    """Reads the orders topic from its start (read_committed) and notes, for each order, when its
    OrderConfirmed or OrderRejected was read. The topic is the bench's own (its namespace)."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            # The broker answers a fetch as soon as the committed offset moves; this only bounds an
            # idle wait.
            fetch_max_wait_ms=100,
        )
        self._partitions = [TopicPartition(topic, partition) for partition in range(partitions)]
        self._decisions: dict[int, asyncio.Future[Decision]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OrderDecisions:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        self._reading = asyncio.create_task(self._read(), name="order-decisions")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        await self._consumer.stop()

    def decided(self, order_number: int) -> asyncio.Future[Decision]:
        """Resolved with the order's decision once it is read (at once if it was read already)."""
        if order_number not in self._decisions:
            self._decisions[order_number] = asyncio.get_running_loop().create_future()
        return self._decisions[order_number]

    async def _read(self) -> None:
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=1_000)
                read_at = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        if dict(record.headers).get(EVENT_TYPE_HEADER) not in DECISIONS:
                            continue  # cart events and OrderPlaced share the topic
                        event = REGISTRY.from_bytes(record.value)
                        assert isinstance(event, OrderConfirmed | OrderRejected)
                        decision = self.decided(event.order_number)
                        if not decision.done():
                            status: Literal["confirmed", "rejected"] = (
                                "confirmed" if isinstance(event, OrderConfirmed) else "rejected"
                            )
                            decision.set_result(Decision(status, read_at))
        except Exception as error:  # every waiting customer hears of it, rather than timing out
            for decision in self._decisions.values():
                if not decision.done():
                    decision.set_exception(error)
            raise


@dataclass
class Confirmations:
    """The orders of one run of customers; times in milliseconds."""

    orders: int = 0
    rejected: int = 0
    failures: int = 0  # not placed, or not decided within DECISION_WAIT
    seconds: float = 0.0  # from the first order's cart to the last decision
    after_answer_ms: list[float] = field(default_factory=list)  # POST /orders answered -> confirmed read
    after_send_ms: list[float] = field(default_factory=list)  # POST /orders sent -> confirmed read
    command_ms: list[float] = field(default_factory=list)  # POST /orders sent -> answered
    cart_ms: list[float] = field(default_factory=list)  # POST /cart sent -> answered
    # POST /orders answered -> GET /orders/{n} answers "confirmed" (when the run polls the read model)
    visible_ms: list[float] = field(default_factory=list)
    polls: int = 0  # GET /orders/{n} sent
    first_failure: str = ""

    @property
    def confirmed(self) -> int:
        return len(self.after_answer_ms)

    def failed(self, why: str) -> None:
        self.failures += 1
        self.first_failure = self.first_failure or why


async def create_order_products(catalog_url: str, admin_token: str, count: int) -> list[int]:
    """`count` products with ample stock. Created without an Idempotency-Key, one after the other, so
    the catalog puts them in its partitions in turn and the reservations spread over all of them."""
    ids: list[int] = []
    async with session(1) as http:
        for number in range(count):
            body = {
                "name": f"Bench order item {number}",
                "description": "Ordered by the bench's customers",
                "price": "4.99",
                "stock": 1_000_000_000,
            }
            headers = {"Authorization": f"Bearer {admin_token}"}
            answer = await send(http, "POST", f"{catalog_url}/products", body=body, headers=headers)
            if answer.status != 201:
                raise RuntimeError(f"creating a product answered {answer.status}: {answer.text[:500]}")
            ids.append(int(answer.json()["id"]))
    return ids


async def wait_until_replicated(orders_database_url: str, ids: list[int], within: float) -> None:
    """Wait until the orders side's replica of the catalog has every product (a cart refuses a product
    it has not heard of); the replica's projector may first have the whole catalog to catch up on."""
    deadline = time.monotonic() + within
    async with make_pool(orders_database_url, max_size=1) as replica:
        while True:
            try:
                if len(await products_by_id(replica, ids)) == len(ids):
                    return
            except (psycopg.Error, psycopg_pool.PoolTimeout) as error:  # no table before the first batch
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the orders side's replica cannot be read: {error!r}") from error
            if time.monotonic() > deadline:
                raise RuntimeError(f"the orders side's replica lacks some of {ids} after {within:.0f}s")
            await asyncio.sleep(0.2)


async def place_orders(
    orders_url: str,
    customer_token: Callable[[], str],
    product_ids: list[int],
    decisions: OrderDecisions,
    count: int,
    concurrency: int,
    poll_every: float | None = None,
) -> Confirmations:
    """`count` new customers, `concurrency` at a time, each ordering one unit of a product (in turn).
    With `poll_every`, each customer then asks `GET /orders/{n}` that often until it shows the order
    confirmed, as a client does (from the decision's read on: the read model cannot show it sooner)."""
    result = Confirmations(orders=count)
    numbers = iter(range(count))

    async def visible(http: aiohttp.ClientSession, order_number: int, headers: dict[str, str]) -> bool:
        assert poll_every is not None
        deadline = time.perf_counter() + DECISION_WAIT
        while time.perf_counter() < deadline:
            result.polls += 1
            answer = await send(http, "GET", f"{orders_url}/orders/{order_number}", headers=headers)
            if answer.status == 200 and answer.json()["status"] == "confirmed":
                return True
            await asyncio.sleep(poll_every)
        return False

    async def customer(http: aiohttp.ClientSession, number: int) -> None:
        headers = {"Authorization": f"Bearer {customer_token()}"}
        line = {"productId": product_ids[number % len(product_ids)], "qty": 1}
        carted = time.perf_counter()
        added = await send(http, "POST", f"{orders_url}/cart", body=line, headers=headers)
        result.cart_ms.append((time.perf_counter() - carted) * 1000)
        if added.status != 200:
            result.failed(f"POST /cart answered {added.status}: {added.text[:300]}")
            return
        sent = time.perf_counter()
        placed = await send(http, "POST", f"{orders_url}/orders", headers=headers)
        answered = time.perf_counter()
        if placed.status != 200:
            result.failed(f"POST /orders answered {placed.status}: {placed.text[:300]}")
            return
        order_number = int(placed.json()["orderNumber"])
        try:
            decision = await asyncio.wait_for(asyncio.shield(decisions.decided(order_number)), DECISION_WAIT)
        except TimeoutError:
            result.failed(f"order {order_number} was not decided within {DECISION_WAIT:.0f}s")
            return
        if decision.status != "confirmed":
            result.rejected += 1
            result.failed(f"order {order_number} was {decision.status}")
            return
        if poll_every is not None:
            if not await visible(http, order_number, headers):
                result.failed(
                    f"GET /orders/{order_number} did not show it confirmed within {DECISION_WAIT:.0f}s"
                )
                return
            result.visible_ms.append((time.perf_counter() - answered) * 1000)
        result.command_ms.append((answered - sent) * 1000)
        result.after_answer_ms.append((decision.read_at - answered) * 1000)
        result.after_send_ms.append((decision.read_at - sent) * 1000)

    async def customers(http: aiohttp.ClientSession) -> None:
        for number in numbers:
            await customer(http, number)

    started = time.perf_counter()
    async with session(concurrency) as http:
        await asyncio.gather(*(customers(http) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
