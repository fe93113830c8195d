"""Runs the order saga: a consumer group over the orders and payments topics (several instances
share their partitions), the saga's rules for each order's events in log order (different orders side by side),
and a sweep that expires unpaid orders past their deadline.

    python -m command_api.orders.saga_runner                  run the saga
    python -m command_api.orders.saga_runner status           its dead letters: steps it could not take
    python -m command_api.orders.saga_runner retry [--all | TOPIC PARTITION OFFSET]
    python -m command_api.orders.saga_runner skip  [--all | TOPIC PARTITION OFFSET]

Offsets are committed only after every step of the events before them is done, so a crash or a
rebalance repeats steps (which are idempotent, see command_api/orders/saga.py) and never skips one.
The saga calls the command sides over HTTP as a service (its own token, role "service", signed with
the service key: this process never holds the key that signs users' tokens). A command side that is
down or answers 5xx is retried with backoff for `saga_step_retry_seconds`; a step that still cannot be
taken, or that a command side refuses, goes to the saga's dead letters (saga_dead_letters.py), and
the order's later steps wait behind it while every other order goes on. `retry` and `skip` are the
operator's decisions, carried out by the running saga within `saga_dead_letter_poll_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from psycopg import sql

from auth.tokens import ServiceTokenIssuer, load_service_issuer, service_token
from command_api.eventstore.partitioning import ID_STRIDE
from command_api.forwarding import OWNER_HEADER
from command_api.orders import saga_dead_letters, saga_metrics
from command_api.orders.saga import (
    OrderSaga,
    OrderView,
    Reservation,
    StepFailed,
    StepRefused,
    StepUnavailable,
    step_for,
)
from command_api.orders.saga_dead_letters import SagaDeadLetter
from command_api.orders.saga_tracing import expiry_span, step_span
from config.logging import configure_logging
from config.process import run_until_terminated, tune_garbage_collector
from config.settings import Settings, get_settings
from config.telemetry import CORRELATION_ID, configure_tracing, http_client_span, inject_http_headers
from event_schemas import topics
from event_schemas.payments import RefundedUnits
from event_schemas.registry import REGISTRY
from projectors.runtime.failures import is_transient, until_done
from read_models.orders import ORDERS_TABLE
from read_models.pool import Pool, make_pool
from web.service_http import Answer, ServiceHttp, Unreachable

log = logging.getLogger("order-saga")

SERVICE_NAME = "order-saga"

DUE_FOR_EXPIRY = sql.SQL(
    "SELECT order_number FROM {table} WHERE status = 'confirmed' AND payment_due <= now() "
    "AND order_number %% %s = ANY(%s) ORDER BY payment_due LIMIT 500"
).format(table=sql.Identifier(ORDERS_TABLE))


@dataclass(frozen=True)
class Reply:
    """A command side's answer to one of the saga's calls."""

    method: str
    path: str
    answer: Answer

    @property
    def status_code(self) -> int:
        return self.answer.status

    def json(self) -> Any:
        return self.answer.json()


class ServiceClient:
    """HTTP calls to a command side as the saga service. A 5xx, a 429 or no answer is retried with
    backoff for `retry_for` seconds, then the step is given up as unavailable (its dead letter).

    A call about one aggregate names its partition, and goes straight to the instance that owns it once
    known: an instance that forwards one of the saga's calls says where it went (`X-Commerce-Owner`,
    command_api/forwarding.py), which saves every later call about that partition the forwarding hop.
    An owner that fails or refuses is forgotten, and the next attempt asks `base_url` again."""

    def __init__(
        self, http: ServiceHttp, base_url: str, issuer: ServiceTokenIssuer, retry_for: float = 60.0
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._issuer = issuer
        self._retry_for = retry_for
        self._token = ""
        self._token_renewed = datetime.min.replace(tzinfo=UTC)
        self._owners: dict[int, str] = {}  # partition -> its owner's base URL, as last heard

    def _authorization(self) -> str:
        now = datetime.now(UTC)
        if now - self._token_renewed > timedelta(minutes=10):
            self._token, self._token_renewed = service_token(self._issuer, SERVICE_NAME, now), now
        return f"Bearer {self._token}"

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, partition: int | None = None
    ) -> Reply:
        """The answer, once it is not a 5xx (or 429): those, and network errors, are retried until
        `retry_for` has passed."""
        delay = 0.05
        give_up_at = asyncio.get_running_loop().time() + self._retry_for
        with http_client_span(method, self._base_url + path) as span:
            while True:
                base = (
                    self._owners.get(partition, self._base_url) if partition is not None else self._base_url
                )
                headers = {"Authorization": self._authorization()}
                if (correlation_id := CORRELATION_ID.get()) is not None:  # the event's, a UUID
                    headers["X-Correlation-Id"] = correlation_id
                inject_http_headers(headers)  # the step's trace goes on
                try:
                    answer = await self._http.request(method, base + path, json_body=body, headers=headers)
                    owner = answer.header(OWNER_HEADER)
                    if partition is not None and owner:
                        self._owners[partition] = owner.rstrip("/")
                    if answer.status < 500 and answer.status != 429:
                        span.set_attribute("http.response.status_code", answer.status)
                        return Reply(method, path, answer)
                    problem = f"{answer.status} {answer.text[:200]}"
                except Unreachable as error:
                    problem = str(error)
                if partition is not None:
                    self._owners.pop(partition, None)
                if asyncio.get_running_loop().time() + delay > give_up_at:
                    raise StepUnavailable(f"{method} {path}: {problem} (retried for {self._retry_for:.0f}s)")
                log.warning("%s %s: %s; retrying in %.2fs", method, path, problem, delay)
                span.add_event("retry", {"problem": problem[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _refused(reply: Reply) -> StepRefused:
    return StepRefused(f"{reply.method} {reply.path}: {reply.status_code} {reply.answer.text[:300]}")


class HttpCatalogCommands:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def reserve(self, order_id: str, product_id: int, quantity: int) -> Reservation:
        response = await self._client.call(
            "POST",
            "/internal/reservations",
            {"orderId": order_id, "productId": product_id, "quantity": quantity},
            partition=product_id % ID_STRIDE,
        )
        if response.status_code in (404, 409, 422):
            # No such product, or a line the catalog will never hold: the order is rejected (and what
            # its other lines hold is released), rather than the order waiting for ever.
            log.warning("reservation refused, the line cannot be held: %s", _refused(response))
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
        response = await self._client.call(
            "POST", "/internal/stock-returns", body, partition=product_id % ID_STRIDE
        )
        if response.status_code != 200:
            raise _refused(response)

    async def _settle(self, how: str, order_id: str, product_id: int) -> None:
        response = await self._client.call(
            "POST",
            f"/internal/reservations/{how}",
            {"orderId": order_id, "productId": product_id},
            partition=product_id % ID_STRIDE,
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
        response = await self._client.call(
            "POST", f"/internal/orders/{order_number}/reservations", body, partition=order_number % ID_STRIDE
        )
        if response.status_code != 200:
            raise _refused(response)
        return bool(response.json()["releaseHeld"])

    async def view(self, order_number: int, *, proven: bool = True) -> OrderView:
        query = "" if proven else "?folded=true"
        response = await self._client.call(
            "GET", f"/internal/orders/{order_number}{query}", partition=order_number % ID_STRIDE
        )
        if response.status_code != 200:
            raise _refused(response)
        answer = response.json()
        return OrderView(answer["status"], tuple(line["productId"] for line in answer["lines"]))

    async def mark_paid(self, order_number: int, intent_id: str, amount_minor: int) -> bool:
        response = await self._client.call(
            "POST",
            f"/internal/orders/{order_number}/paid",
            {"intentId": intent_id, "amountMinor": amount_minor},
            partition=order_number % ID_STRIDE,
        )
        if response.status_code == 409:  # too late, paid by another payment, or not its total: refunded
            log.warning("the order cannot take its payment: %s", _refused(response))
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
        response = await self._client.call(
            "POST", f"/internal/orders/{order_number}/refunded", body, partition=order_number % ID_STRIDE
        )
        if response.status_code not in (200, 409):  # 409: an order never paid (a late payment's refund)
            raise _refused(response)

    async def expire(self, order_number: int) -> None:
        response = await self._client.call(
            "POST", f"/internal/orders/{order_number}/expire", partition=order_number % ID_STRIDE
        )
        if response.status_code not in (200, 404):
            raise _refused(response)


class HttpPaymentCommands:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def refund_unclaimed(self, order_number: int) -> None:
        response = await self._client.call("POST", f"/internal/payments/{order_number}/refund-unclaimed")
        if response.status_code != 200:
            raise _refused(response)


class PartitionProgress:
    """Which of a partition's records are still in flight: its position may be committed up to the
    first of them, so a crash repeats unfinished steps (idempotent) and never skips one."""

    def __init__(self) -> None:
        self.in_flight: set[int] = set()
        self.next_offset: int | None = None
        self.committed: int | None = None

    def started(self, offset: int) -> None:
        self.in_flight.add(offset)
        self.next_offset = max(offset + 1, self.next_offset or 0)

    def finished(self, offset: int) -> None:
        self.in_flight.discard(offset)

    def committable(self) -> int | None:
        """The position to commit, if it moved since the last commit."""
        position = min(self.in_flight) if self.in_flight else self.next_offset
        return None if position is None or position == self.committed else position


OrderKey = tuple[str, int, bytes | None]  # (topic, partition, record key): one order's records


class OrderSagaRunner:
    r"""The saga's consumer, as a state machine per record:

        polled -> (its order's earlier steps done) -> stepping -> done
                                                           \-> dead-lettered (refused, unavailable
                                                                 past its retries, undecodable)
        polled -> (its order has a dead letter) -> dead-lettered, waiting behind it

    Each order's records run in log order, every order side by side, and the poll goes on while steps
    run: one order whose command side is slow or refuses holds no other order. A partition's position
    is committed up to its first record in flight. The expiry sweep and the dead letters' decisions
    run beside the consumer; if any of them stops, the runner stops (the supervisor restarts it)."""

    # Positions are committed at most this often while records flow (and whenever partitions are
    # revoked or the runner stops): a commit per poll was 13 % of the saga's samples under the selling
    # load, and a crash repeats at most this much more of the steps, which are idempotent.
    COMMIT_EVERY_SECONDS = 0.5

    def __init__(
        self, saga: OrderSaga, orders: HttpOrderCommands, settings: Settings, database: Pool
    ) -> None:
        self._saga = saga
        self._orders = orders
        self._settings = settings
        self._database = database
        self._topic = topics.in_namespace(settings.namespace, topics.ORDERS)
        self._topics = [self._topic, topics.in_namespace(settings.namespace, topics.PAYMENTS)]
        self._consumer: AIOKafkaConsumer | None = None
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._chains: dict[OrderKey, asyncio.Task[None]] = {}
        self._blocked: set[OrderKey] = set()
        self._in_flight = 0
        self._paused = False

    async def run(self) -> None:
        await until_done(lambda: saga_dead_letters.ensure_table(self._database), "create saga_dead_letters")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=topics.in_namespace(self._settings.namespace, "orders-saga"),
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
        )
        consumer.subscribe(self._topics, listener=_Rebalance(self))
        self._consumer = consumer  # before it starts: its first rebalance calls back at once
        await consumer.start()
        background = [
            asyncio.create_task(self._sweep_expired(), name="order-expiry-sweep"),
            asyncio.create_task(self._carry_out_decisions(), name="saga-dead-letter-decisions"),
        ]
        committed_at = 0.0
        try:
            while True:
                raise_if_stopped(background)
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        self._dispatch(tp, record)
                self._apply_backpressure()
                now = asyncio.get_running_loop().time()
                if now - committed_at >= self.COMMIT_EVERY_SECONDS:
                    await self._commit(list(self._progress))
                    committed_at = now
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._stop_partitions(list(self._progress), grace=5.0)
            await consumer.stop()

    def _dispatch(self, tp: TopicPartition, record: Any) -> None:
        """Queue the record behind its order's earlier records (if any are still running)."""
        self._progress.setdefault(tp, PartitionProgress()).started(record.offset)
        self._in_flight += 1
        self._chain((tp.topic, tp.partition, record.key), lambda: self._step(tp, record))

    def _chain(self, key: OrderKey, work: Callable[[], Awaitable[None]]) -> None:
        previous = self._chains.get(key)

        async def after_previous() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):  # every step handles its own failures
                    await previous
            await work()

        task = asyncio.create_task(after_previous())
        self._chains[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._chains.get(key) is done:
                del self._chains[key]

        task.add_done_callback(forget)

    async def _step(self, tp: TopicPartition, record: Any) -> None:
        """The record's step, done or dead-lettered; only then may the position pass it. A step cut
        short (its partition revoked, the runner stopping) stays in flight, so the next owner takes it."""
        key: OrderKey = (tp.topic, tp.partition, record.key)
        taken = False
        try:
            if key in self._blocked:
                await self._park(
                    record,
                    None,
                    WaitingBehind("an earlier step of this order is in the saga's dead letters"),
                    waiting_behind=True,
                )
            else:
                with contextlib.suppress(StepDeadLettered):
                    await self._take_step(record)
            taken = True
        finally:
            self._in_flight -= 1
            if taken and (progress := self._progress.get(tp)) is not None:
                progress.finished(record.offset)

    async def _take_step(self, record: Any) -> None:
        """Decode the record and take its step; anything that stops the step puts it in the dead
        letters (and raises StepDeadLettered)."""
        try:
            event = REGISTRY.from_bytes(record.value)
        except Exception as error:  # UnknownEvent, a validation error, bytes that are not JSON
            await self._park(record, None, error)
            raise StepDeadLettered from error
        step = step_for(event)
        if step is None:
            return
        try:
            with step_span(
                event, record.headers, TopicPartition(record.topic, record.partition), record.offset
            ):
                await self._saga.handle(event)
                # One line per step, with the step's trace and correlation ids (logged inside its span).
                log.info("order saga: %s done (%s:%s)", step, record.partition, record.offset)
        except StepFailed as failed:
            saga_metrics.STEPS.labels(step, "dead_lettered").inc()
            await self._park(record, step, failed)
            raise StepDeadLettered from failed
        except Exception as error:  # a bug: said loudly, and the step is kept for the operator
            log.exception("order saga step %s failed at %s:%s", step, record.partition, record.offset)
            saga_metrics.STEPS.labels(step, "failed").inc()
            await self._park(record, step, error)
            raise StepDeadLettered from error
        saga_metrics.STEPS.labels(step, "done").inc()

    async def _park(
        self, record: Any, step: str | None, error: BaseException, *, waiting_behind: bool = False
    ) -> None:
        """The step is kept (durably, before its offset may be committed) and its order blocked."""
        letter = SagaDeadLetter.of(record, step, error, waiting_behind=waiting_behind)
        if not waiting_behind:
            log.error(
                "order saga: %s at %s:%s goes to the dead letters: %s",
                letter.event_type,
                record.partition,
                record.offset,
                letter.reason,
            )
        await until_done(
            lambda: saga_dead_letters.park(self._database, letter), "park a saga step", is_transient
        )
        self._blocked.add((record.topic, record.partition, record.key))
        saga_metrics.DEAD_LETTERS.labels("waiting_behind" if waiting_behind else "parked").inc()

    async def _carry_out_decisions(self) -> None:
        """Now and then, the operator's decisions on this instance's dead letters: each order's
        letters in log order, through the order's own chain, so its new records wait behind them."""
        while True:
            await asyncio.sleep(self._settings.saga_dead_letter_poll_seconds)
            try:
                await self._queue_decisions()
            except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
                log.warning("cannot read the saga's dead letters: %r", error)

    async def _queue_decisions(self) -> None:
        owned = self._owned()
        if not owned:
            return
        letters = await self._open_letters(owned)
        by_order: dict[OrderKey, list[SagaDeadLetter]] = defaultdict(list)
        for letter in letters:
            by_order[(letter.topic, letter.partition, letter.key)].append(letter)
        for key, own in by_order.items():
            if own[0].decision is not None or own[0].waiting_behind:
                self._chain(key, functools.partial(self._resolve_order, key))

    async def _resolve_order(self, key: OrderKey) -> None:
        """Carry out the decisions on one order's letters, in order; stop at the first that still
        fails or waits for the operator. The order is unblocked once none is open."""
        topic, partition, _ = key
        letters = [
            letter
            for letter in await self._open_letters({TopicPartition(topic, partition)})
            if letter.key == key[2]
        ]
        for letter in letters:
            if letter.decision == "skip":
                await saga_dead_letters.resolve(self._database, letter, "skipped")
                continue
            if letter.decision is None and not letter.waiting_behind:
                return  # waits for the operator
            try:
                await self._take_step(letter.as_record())
            except StepDeadLettered:
                return  # parked again, as the head of its order
            await saga_dead_letters.resolve(self._database, letter, "retried")
        self._blocked.discard(key)

    async def _open_letters(self, owned: set[TopicPartition] | list[TopicPartition]) -> list[SagaDeadLetter]:
        owned = set(owned)
        async with self._database.connection() as conn:
            letters = await saga_dead_letters.open_letters(
                conn, self._topics, sorted({tp.partition for tp in owned})
            )
        return [letter for letter in letters if TopicPartition(letter.topic, letter.partition) in owned]

    def _owned(self) -> set[TopicPartition]:
        return set() if self._consumer is None else set(self._consumer.assignment())

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Orders with open letters in the new partitions stay blocked under this owner too."""
        if not assigned:
            return
        letters = await until_done(
            lambda: self._open_letters(list(assigned)), "read the saga's dead letters", is_transient
        )
        self._blocked |= {(letter.topic, letter.partition, letter.key) for letter in letters}

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._stop_partitions(list(revoked), grace=5.0)

    async def _stop_partitions(self, partitions: list[TopicPartition], grace: float) -> None:
        """Let the partitions' steps finish (for a while: they are idempotent, so a step cut short is
        repeated by the next owner), commit what is done, and forget them."""
        stopping = set(partitions)
        running = [task for key, task in self._chains.items() if TopicPartition(key[0], key[1]) in stopping]
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._commit(partitions)
        for tp in partitions:
            self._progress.pop(tp, None)
        self._blocked = {key for key in self._blocked if TopicPartition(key[0], key[1]) not in stopping}

    async def _commit(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        positions = {
            tp: position
            for tp in partitions
            if tp in self._progress and (position := self._progress[tp].committable()) is not None
        }
        if not positions:
            return
        try:
            await self._consumer.commit(positions)
        except (CommitFailedError, KafkaError) as error:
            # The partition moved to another instance, which repeats these steps (idempotent).
            log.warning("commit of %s failed: %r", sorted(tp.partition for tp in positions), error)
            return
        for tp, position in positions.items():
            self._progress[tp].committed = position

    def _apply_backpressure(self) -> None:
        """Above `saga_max_in_flight` records in flight, stop fetching until half of them are done."""
        assert self._consumer is not None
        limit = self._settings.saga_max_in_flight
        if not self._paused and self._in_flight >= limit:
            self._consumer.pause(*self._consumer.assignment())
            self._paused = True
        elif self._paused and self._in_flight <= limit // 2:
            self._consumer.resume(*self._consumer.assignment())
            self._paused = False

    async def _sweep_expired(self) -> None:
        """Expire confirmed orders past their deadline, for the partitions this instance owns (found in
        the orders read model, itself rebuilt from the log; the Order aggregate checks the deadline).
        An order whose expiry fails now is tried again at the next sweep."""
        while True:
            await asyncio.sleep(self._settings.order_expiry_sweep_seconds)
            owned = sorted(tp.partition for tp in self._owned() if tp.topic == self._topic)
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
                try:
                    with expiry_span(order_number):
                        await self._orders.expire(order_number)
                except StepFailed as failed:
                    log.warning(
                        "order %s not expired now (the next sweep tries again): %s", order_number, failed
                    )
                    saga_metrics.STEPS.labels("expire_unpaid_order", "retried_later").inc()
                    continue
                saga_metrics.STEPS.labels("expire_unpaid_order", "done").inc()


class StepDeadLettered(Exception):
    """The step is in the dead letters (raised past `_take_step` so a retry knows it failed again)."""


class WaitingBehind(Exception):
    """Why a record is parked without being tried: its order has an open dead letter."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: OrderSagaRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner.partitions_assigned(set(assigned))


def raise_if_stopped(tasks: list[asyncio.Task[None]]) -> None:
    """A background task that stopped stops the runner, loudly: nothing dies silently."""
    for task in tasks:
        if task.done():
            error = None if task.cancelled() else task.exception()
            raise RuntimeError(f"the saga's {task.get_name()} stopped") from error


async def run(settings: Settings) -> None:
    if settings.projector_metrics_port:
        saga_metrics.serve_metrics(settings.projector_metrics_host, settings.projector_metrics_port)
    issuer = load_service_issuer(settings)
    async with (
        ServiceHttp(timeout=settings.command_timeout_seconds * 2) as http,
        make_pool(settings.orders_database_url, max_size=settings.database_pool_size) as database,
    ):
        retry_for = settings.saga_step_retry_seconds
        catalog = HttpCatalogCommands(ServiceClient(http, settings.catalog_url, issuer, retry_for))
        orders = HttpOrderCommands(ServiceClient(http, settings.orders_url, issuer, retry_for))
        payments = HttpPaymentCommands(ServiceClient(http, settings.payments_url, issuer, retry_for))
        await OrderSagaRunner(OrderSaga(catalog, orders, payments), orders, settings, database).run()


async def print_status(settings: Settings) -> int:
    """The open dead letters, one line each; the exit status says whether any is open."""
    async with make_pool(settings.orders_database_url) as database:
        await saga_dead_letters.ensure_table(database)
        names = [topics.in_namespace(settings.namespace, name) for name in (topics.ORDERS, topics.PAYMENTS)]
        async with database.connection() as conn:
            letters = await saga_dead_letters.open_letters(conn, names)
    for letter in letters:
        state = "waiting behind an earlier step" if letter.waiting_behind else (letter.decision or "parked")
        print(
            f"{letter.topic} {letter.partition} {letter.offset} {letter.event_type}"
            f" step={letter.step or '-'} attempts={letter.attempts} {state}: {letter.error_class}: {letter.reason}"
        )
    print(f"{len(letters)} open dead letter(s)")
    return 1 if letters else 0


async def decide(settings: Settings, decision: saga_dead_letters.Decision, where: list[str]) -> int:
    topic, partition, offset = (None, None, None) if not where else (where[0], int(where[1]), int(where[2]))
    async with make_pool(settings.orders_database_url) as database:
        await saga_dead_letters.ensure_table(database)
        reached = await saga_dead_letters.decide(database, decision, topic, partition, offset)
    print(f"{decision}: {reached} dead letter(s); the saga instance that owns each carries it out")
    return 0 if reached else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m command_api.orders.saga_runner")
    parser.add_argument("command", nargs="?", default="run", choices=["run", "status", "retry", "skip"])
    parser.add_argument("where", nargs="*", help="TOPIC PARTITION OFFSET of one dead letter")
    parser.add_argument("--all", action="store_true", help="every open dead letter")
    arguments = parser.parse_args()
    settings = get_settings()
    if arguments.command == "status":
        sys.exit(asyncio.run(print_status(settings)))
    if arguments.command in ("retry", "skip"):
        if arguments.all == bool(arguments.where) or (arguments.where and len(arguments.where) != 3):
            parser.error("name one dead letter (TOPIC PARTITION OFFSET) or --all")
        sys.exit(asyncio.run(decide(settings, arguments.command, arguments.where)))
    tune_garbage_collector()
    configure_logging(SERVICE_NAME, settings.log_format)
    configure_tracing(SERVICE_NAME, settings)
    run_until_terminated(run(settings))


if __name__ == "__main__":
    main()
