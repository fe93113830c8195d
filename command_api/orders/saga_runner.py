"""Runs the order saga: a consumer group over the orders and payments topics (several instances
share their partitions), the saga's rules for each order's events in log order (different orders side by side),
and a sweep that expires unpaid orders past their deadline.

    python -m command_api.orders.saga_runner

Offsets are committed only after every step of the events before them is done, so a crash or a
rebalance repeats steps (which are idempotent, see command_api/orders/saga.py) and never skips one.
The saga calls the command sides over HTTP as a service (its own token, role "service", signed with
the service key: this process never holds the key that signs users' tokens); a command
side that is down or answers 5xx is retried with backoff until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import psycopg_pool
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from psycopg import sql

from auth.tokens import ServiceTokenIssuer, load_service_issuer, service_token
from command_api.eventstore.partitioning import ID_STRIDE
from command_api.orders import saga_metrics
from command_api.orders.saga import OrderSaga, Reservation, step_for
from command_api.orders.saga_tracing import expiry_span, step_span
from config.logging import configure_logging
from config.process import run_until_terminated, tune_garbage_collector
from config.settings import Settings, get_settings
from config.telemetry import CORRELATION_ID, configure_tracing, http_client_span, inject_http_headers
from event_schemas import topics
from event_schemas.payments import RefundedUnits
from event_schemas.registry import REGISTRY
from read_models.orders import ORDERS_TABLE
from read_models.pool import Pool, make_pool

log = logging.getLogger("order-saga")

SERVICE_NAME = "order-saga"

DUE_FOR_EXPIRY = sql.SQL(
    "SELECT order_number FROM {table} WHERE status = 'confirmed' AND payment_due <= now() "
    "AND order_number %% %s = ANY(%s) ORDER BY payment_due LIMIT 500"
).format(table=sql.Identifier(ORDERS_TABLE))


class CommandRefused(Exception):
    """A command side refused a saga command for good (a 4xx other than the expected ones)."""


class ServiceClient:
    """HTTP calls to a command side as the saga service, retried until they get an answer."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, issuer: ServiceTokenIssuer) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._issuer = issuer
        self._token = ""
        self._token_renewed = datetime.min.replace(tzinfo=UTC)

    def _authorization(self) -> str:
        now = datetime.now(UTC)
        if now - self._token_renewed > timedelta(minutes=10):
            self._token, self._token_renewed = service_token(self._issuer, SERVICE_NAME, now), now
        return f"Bearer {self._token}"

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """The answer, once it is not a 5xx (or 429): those, and network errors, are retried."""
        delay = 0.05
        url = self._base_url + path
        with http_client_span(method, url) as span:
            while True:
                headers = {"Authorization": self._authorization()}
                if (correlation_id := CORRELATION_ID.get()) is not None:  # the event's, a UUID
                    headers["X-Correlation-Id"] = correlation_id
                inject_http_headers(headers)  # the step's trace goes on
                try:
                    response = await self._http.request(method, url, json=body, headers=headers)
                    if response.status_code < 500 and response.status_code != 429:
                        span.set_attribute("http.response.status_code", response.status_code)
                        return response
                    problem = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as error:
                    problem = repr(error)
                log.warning("%s %s: %s; retrying in %.2fs", method, path, problem, delay)
                span.add_event("retry", {"problem": problem[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _refused(response: httpx.Response) -> CommandRefused:
    return CommandRefused(
        f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
    )


class HttpCatalogCommands:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def reserve(self, order_id: str, product_id: int, quantity: int) -> Reservation:
        response = await self._client.call(
            "POST",
            "/internal/reservations",
            {"orderId": order_id, "productId": product_id, "quantity": quantity},
        )
        if response.status_code == 404:  # no such product: nothing can be held
            return Reservation(product_id, False, "product_unavailable")
        if response.status_code != 200:
            raise _refused(response)
        answer = response.json()
        return Reservation(product_id, answer["outcome"] == "reserved", answer["reason"])

    async def release(self, order_id: str, product_id: int) -> None:
        await self._settle("release", order_id, product_id)

    async def commit(self, order_id: str, product_id: int) -> None:
        await self._settle("commit", order_id, product_id)

    async def return_stock(self, order_id: str, refund_id: str, product_id: int, qty: int) -> None:
        body = {"orderId": order_id, "refundId": refund_id, "productId": product_id, "quantity": qty}
        response = await self._client.call("POST", "/internal/stock-returns", body)
        if response.status_code != 200:
            raise _refused(response)

    async def _settle(self, how: str, order_id: str, product_id: int) -> None:
        response = await self._client.call(
            "POST", f"/internal/reservations/{how}", {"orderId": order_id, "productId": product_id}
        )
        if response.status_code not in (200, 404):
            raise _refused(response)


class HttpOrderCommands:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def record_reservations(self, order_number: int, results: list[Reservation]) -> bool:
        body = {
            "results": [
                {"productId": result.product_id, "reserved": result.reserved, "reason": result.reason}
                for result in results
            ]
        }
        response = await self._client.call("POST", f"/internal/orders/{order_number}/reservations", body)
        if response.status_code != 200:
            raise _refused(response)
        return bool(response.json()["releaseHeld"])

    async def products_of(self, order_number: int) -> list[int]:
        response = await self._client.call("GET", f"/internal/orders/{order_number}")
        if response.status_code != 200:
            raise _refused(response)
        return [line["productId"] for line in response.json()["lines"]]

    async def mark_paid(self, order_number: int, intent_id: str, amount_minor: int) -> bool:
        response = await self._client.call(
            "POST",
            f"/internal/orders/{order_number}/paid",
            {"intentId": intent_id, "amountMinor": amount_minor},
        )
        if response.status_code == 409 and response.json().get("error") == "payment_too_late":
            return False
        if response.status_code != 200:
            raise _refused(response)
        return True

    async def record_refund(
        self,
        order_number: int,
        refund_id: str,
        amount_minor: int,
        units: tuple[RefundedUnits, ...],
        fully: bool,
    ) -> None:
        body = {
            "refundId": refund_id,
            "amountMinor": amount_minor,
            "units": [{"productId": unit.product_id, "qty": unit.qty} for unit in units],
            "fully": fully,
        }
        response = await self._client.call("POST", f"/internal/orders/{order_number}/refunded", body)
        if response.status_code not in (200, 409):  # 409: an order never paid (a late payment's refund)
            raise _refused(response)

    async def payment_failed(self, order_number: int) -> None:
        response = await self._client.call("POST", f"/internal/orders/{order_number}/payment-failed")
        if response.status_code not in (200, 409):  # 409: the order is past cancelling (paid, or ended)
            raise _refused(response)

    async def expire(self, order_number: int) -> None:
        response = await self._client.call("POST", f"/internal/orders/{order_number}/expire")
        if response.status_code not in (200, 404):
            raise _refused(response)


class HttpPaymentCommands:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def refund_unclaimed(self, order_number: int) -> None:
        response = await self._client.call("POST", f"/internal/payments/{order_number}/refund-unclaimed")
        if response.status_code != 200:
            raise _refused(response)


class OrderSagaRunner:
    def __init__(
        self, saga: OrderSaga, orders: HttpOrderCommands, settings: Settings, database: Pool
    ) -> None:
        self._saga = saga
        self._orders = orders
        self._settings = settings
        self._database = database
        self._topic = topics.in_namespace(settings.namespace, topics.ORDERS)
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            topics.in_namespace(self._settings.namespace, topics.PAYMENTS),
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=topics.in_namespace(self._settings.namespace, "orders-saga"),
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
        )
        await consumer.start()
        self._consumer = consumer
        sweeping = asyncio.create_task(self._sweep_expired(), name="order-expiry-sweep")
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1_000, max_records=500)
                if batches:
                    await asyncio.gather(*(self._process(tp, records) for tp, records in batches.items()))
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            await consumer.stop()

    async def _process(self, tp: TopicPartition, records: list[Any]) -> None:
        """Each order's events in log order, different orders side by side (their steps touch
        different aggregates); the position is committed once every step before it is done."""
        assert self._consumer is not None
        by_order: dict[bytes, list[Any]] = defaultdict(list)
        for record in records:
            by_order[record.key].append(record)
        await asyncio.gather(*(self._in_order(tp, own) for own in by_order.values()))
        try:
            await self._consumer.commit({tp: records[-1].offset + 1})
        except (CommitFailedError, KafkaError) as error:
            # The partition moved to another instance, which repeats these steps (idempotent).
            log.warning("commit of partition %s failed: %r", tp.partition, error)

    async def _in_order(self, tp: TopicPartition, records: list[Any]) -> None:
        for record in records:
            event = REGISTRY.from_bytes(record.value)
            outcome = None  # cancelled (the runner stops): not counted
            try:
                with step_span(event, record.headers, tp, record.offset):
                    await self._saga.handle(event)
                outcome = "done"
            except CommandRefused as refused:
                outcome = "refused"
                # Not retryable: a bug or an inconsistent log. Logged loudly and skipped (dead letters
                # are the guarantees issue's work).
                log.error(
                    "order saga step refused for %s at %s:%s: %s",
                    event.event_type,
                    tp.partition,
                    record.offset,
                    refused,
                )
            except Exception:
                outcome = "failed"
                raise
            finally:
                if outcome is not None and (step := step_for(event)) is not None:
                    saga_metrics.STEPS.labels(step, outcome).inc()

    async def _sweep_expired(self) -> None:
        """Expire confirmed orders past their deadline, for the partitions this instance owns (found in
        the orders read model, itself rebuilt from the log; the Order aggregate checks the deadline)."""
        while True:
            await asyncio.sleep(self._settings.order_expiry_sweep_seconds)
            assert self._consumer is not None
            owned = sorted(tp.partition for tp in self._consumer.assignment() if tp.topic == self._topic)
            if not owned:
                continue
            try:
                async with self._database.connection() as conn:
                    cursor = await conn.execute(DUE_FOR_EXPIRY, (ID_STRIDE, owned))
                    due = [row["order_number"] for row in await cursor.fetchall()]
            except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
                log.warning("cannot look for expired orders: %r", error)
                continue
            for order_number in due:
                with expiry_span(order_number):
                    await self._orders.expire(order_number)
                saga_metrics.STEPS.labels("expire_unpaid_order", "done").inc()


async def run(settings: Settings) -> None:
    if settings.projector_metrics_port:
        saga_metrics.serve_metrics(settings.projector_metrics_host, settings.projector_metrics_port)
    issuer = load_service_issuer(settings)
    timeout = httpx.Timeout(settings.command_timeout_seconds * 2)
    async with (
        httpx.AsyncClient(timeout=timeout) as http,
        make_pool(settings.orders_database_url) as database,
    ):
        catalog = HttpCatalogCommands(ServiceClient(http, settings.catalog_url, issuer))
        orders = HttpOrderCommands(ServiceClient(http, settings.orders_url, issuer))
        payments = HttpPaymentCommands(ServiceClient(http, settings.payments_url, issuer))
        await OrderSagaRunner(OrderSaga(catalog, orders, payments), orders, settings, database).run()


def main() -> None:
    tune_garbage_collector()
    settings = get_settings()
    configure_logging(SERVICE_NAME, settings.log_format)
    configure_tracing(SERVICE_NAME, settings)
    run_until_terminated(run(settings))


if __name__ == "__main__":
    main()
