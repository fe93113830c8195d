"""Money under chaos: a mixed shopping load while the order saga and a payments instance are killed
(SIGKILL) and restarted at random points, then one ledger check over every order and product.

Customers fill carts and place orders; then each pays with a good card, or is declined and retries,
or is declined and leaves, or cancels, or cancels and pays anyway (a late payment), or lets the order
expire; payments are settled by verify-payment or by a signed webhook; an admin refunds some paid
orders, whole or one unit. Afterwards, from the gateway's own records and the log:

- every order's captured - refunded money is its amount less its refunds if it is paid, else 0;
- no order is paid twice, and none is left pending or confirmed past its deadline;
- every product's units on hand = created + adjustments - units of paid orders + units refunded
  back, and nothing is held any more;
- the saga's dead letters are empty, and `python -m payments reconcile` finds nothing.

`python -m bench --only chaos` prints it; tests/integration/test_money_ledger.py runs a short one.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from command_api.catalog.domain import PRODUCT, ProductState
from command_api.orders.domain import ORDER, OrderState
from event_schemas import topics
from event_schemas.catalog import ProductCreated, StockAdjusted
from event_schemas.money import minor_units
from event_schemas.orders import OrderPaid, OrderPlaced, OrderRefunded
from event_schemas.payments import PaymentFailed, PaymentRefunded
from tests.support.catalog_client import created
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.orders_client import (
    add_to_cart,
    new_customer_id,
    order_settled,
    place_order,
    replica_knows,
)
from tests.support.processes import HttpService, ServiceProcess
from tests.support.stripe_webhooks import intent_event, signed
from tests.support.users_client import bearer
from tests.support.waiting import eventually

WEBHOOK_SECRET = "whsec_chaos_" + "0" * 24  # a test endpoint's secret, not a real one
PAYS = "4242424242424242"
DECLINED = "4000000000000002"
PAYMENT_WINDOW_SECONDS = 8.0
ORDER_PREFIX = ORDER.id_prefix or "order-"
JOURNEYS = {
    "pay": 35,
    "decline_then_pay": 20,
    "decline_and_leave": 8,
    "cancel": 8,
    "cancel_then_pay": 10,
    "expire_then_pay": 4,
    "abandon": 15,
}


@dataclass
class ChaosStack:
    deployment: Deployment
    catalog: HttpService
    orders: HttpService
    payments: list[HttpService]
    saga: ServiceProcess
    others: list[ServiceProcess]

    def start_saga(self) -> None:
        self.saga = self.deployment.order_saga(
            self.catalog.url,
            self.orders.url,
            self.payments[0].url,
            env={"COMMERCE_SAGA_STEP_RETRY_SECONDS": "60"},
        ).start()

    def stop(self) -> None:
        for process in (self.saga, *self.payments, self.orders, self.catalog, *self.others):
            process.stop()


def start_stack(deployment: Deployment) -> ChaosStack:
    """Catalog, orders, two payments instances (the simulated gateway, and webhooks signed with a test
    secret), the projectors and the saga, in the deployment's own namespace."""
    others = [
        deployment.projector("catalog").start(),
        deployment.projector("orders-products", "orders-carts", "orders").start(),
        deployment.projector("payments-orders", "payments").start(),
    ]
    catalog = deployment.gateway("catalog", name="chaos-catalog").start()
    orders = deployment.gateway("orders", name="chaos-orders").start()
    webhooks = {"COMMERCE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    payments = [
        deployment.gateway("payments", name=f"chaos-payments-{n}", env=webhooks).start() for n in (1, 2)
    ]
    stack = ChaosStack(
        deployment,
        catalog,
        orders,
        payments,
        ServiceProcess("unstarted", [], {}, deployment.work_dir),
        others,
    )
    stack.start_saga()
    return stack


@dataclass
class Tally:
    """What the load did, counted by its threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    paid_orders: list[int] = field(default_factory=list)
    first_error: str | None = None

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def error(self, what: str) -> None:
        with self.lock:
            self.counts["client errors"] += 1
            self.first_error = self.first_error or what


class Shopper:
    """One customer's journeys, against whichever payments instance answers."""

    def __init__(self, stack: ChaosStack, products: list[int], tally: Tally, rng: random.Random) -> None:
        self.stack = stack
        self.products = products
        self.tally = tally
        self.rng = rng

    def payments_call(self, method: str, path: str, **arguments: Any) -> httpx.Response:
        """The call, on one instance or the other until one answers other than 503 or a dropped
        connection (the other instance is being killed); commands carry an Idempotency-Key."""
        deadline = time.monotonic() + 90
        last = ""
        while True:
            instance = self.rng.choice(self.stack.payments)
            try:
                response = httpx.request(method, instance.url + path, timeout=30, **arguments)
                if response.status_code != 503:
                    return response
                last = f"503 {response.text[:200]}"
            except httpx.HTTPError as error:
                last = repr(error)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: no payments instance answered for 90 s (last: {last})")
            time.sleep(0.2)

    def journey(self) -> None:
        token = self.stack.deployment.customer_token(new_customer_id())
        for product_id in self.rng.sample(self.products, k=self.rng.randint(1, 2)):
            if (
                add_to_cart(self.stack.orders.url, token, product_id, self.rng.randint(1, 3)).status_code
                != 200
            ):
                self.tally.error("add to cart")
                return
        placed = place_order(self.stack.orders.url, token)
        if placed.status_code != 200:
            self.tally.error(f"place order: {placed.status_code} {placed.text[:200]}")
            return
        order_number = int(placed.json()["orderNumber"])
        self.tally.count("orders placed")
        if order_settled(self.stack.orders.url, token, order_number, within=120)["status"] == "rejected":
            self.tally.count("orders rejected")
            return
        kind = self.rng.choices(list(JOURNEYS), weights=list(JOURNEYS.values()))[0]
        self.tally.count(f"journey {kind}")
        getattr(self, kind)(token, order_number)

    def intent(self, token: str, order_number: int) -> dict[str, Any] | None:
        answer = self.payments_call(
            "POST",
            "/create-payment",
            json={"orderNumber": order_number},
            headers=bearer(token) | {"Idempotency-Key": f"chaos-pay-{order_number}"},
        )
        if answer.status_code == 409:  # expired meanwhile (a slow machine): nothing to pay
            return None
        if answer.status_code != 200:
            self.tally.error(f"create-payment: {answer.status_code} {answer.text[:200]}")
            return None
        data: dict[str, Any] = answer.json()["data"]
        return data

    def card(self, data: dict[str, Any], number: str) -> None:
        answer = self.payments_call(
            "POST",
            f"/simulated-gateway/payment_intents/{data['intentId']}/confirm",
            json={"clientSecret": data["secret"], "card": number},
        )
        if answer.status_code != 200:
            self.tally.error(f"confirm: {answer.status_code} {answer.text[:200]}")

    def settle(self, token: str, data: dict[str, Any], order_number: int) -> None:
        """Tell the shop the payment succeeded: by verify-payment, or by Stripe's signed webhook."""
        if self.rng.random() < 0.5:
            answer = self.payments_call("POST", f"/verify-payment/{data['intentId']}", headers=bearer(token))
            self.tally.count("settled by verify-payment")
        else:
            event = intent_event(
                "payment_intent.succeeded",
                data["intentId"],
                order_number,
                data["amount"],
                "succeeded",
                data["currency"],
            )
            body, signature = signed(event, WEBHOOK_SECRET)
            answer = self.payments_call(
                "POST",
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            )
            self.tally.count("settled by webhook")
        if answer.status_code != 200:
            self.tally.error(f"settle: {answer.status_code} {answer.text[:200]}")
            return
        with self.tally.lock:
            self.tally.paid_orders.append(order_number)

    def decline(self, token: str, data: dict[str, Any]) -> None:
        self.card(data, DECLINED)
        answer = self.payments_call("POST", f"/verify-payment/{data['intentId']}", headers=bearer(token))
        if answer.status_code == 200 and answer.json()["status"] == "failed":
            self.tally.count("declines")

    def pay(self, token: str, order_number: int) -> None:
        if (data := self.intent(token, order_number)) is not None:
            self.card(data, PAYS)
            self.settle(token, data, order_number)

    def decline_then_pay(self, token: str, order_number: int) -> None:
        if (data := self.intent(token, order_number)) is not None:
            self.decline(token, data)
            self.tally.count("retries after a decline")
            self.card(data, PAYS)
            self.settle(token, data, order_number)

    def decline_and_leave(self, token: str, order_number: int) -> None:
        if (data := self.intent(token, order_number)) is not None:
            self.decline(token, data)

    def cancel(self, token: str, order_number: int) -> None:
        answer = httpx.post(
            f"{self.stack.orders.url}/orders/{order_number}/cancel", headers=bearer(token), timeout=30
        )
        if answer.status_code == 200:
            self.tally.count("cancels")

    def cancel_then_pay(self, token: str, order_number: int) -> None:
        if (data := self.intent(token, order_number)) is not None:
            self.cancel(token, order_number)
            self.card(data, PAYS)
            self.settle(token, data, order_number)
            self.tally.count("late payments")

    def expire_then_pay(self, token: str, order_number: int) -> None:
        if (data := self.intent(token, order_number)) is not None:
            time.sleep(PAYMENT_WINDOW_SECONDS + 2)
            self.card(data, PAYS)
            self.settle(token, data, order_number)
            self.tally.count("late payments")

    def abandon(self, token: str, order_number: int) -> None:
        return None


def refund_some(stack: ChaosStack, tally: Tally, rng: random.Random, stop: threading.Event) -> None:
    """An admin refunds a paid order now and then: all of it, or one unit of a line."""
    admin = stack.deployment.admin_token()
    while not stop.wait(rng.uniform(0.3, 1.0)):
        with tally.lock:
            if not tally.paid_orders:
                continue
            order_number = rng.choice(tally.paid_orders)
        body: dict[str, Any] = {"orderNumber": order_number}
        if rng.random() < 0.5:
            order = httpx.get(f"{stack.orders.url}/orders/{order_number}", headers=bearer(admin), timeout=30)
            if order.status_code == 200 and order.json().get("items"):
                line = rng.choice(order.json()["items"])
                body["lines"] = [{"productId": line["productId"], "qty": 1}]
        shopper = Shopper(stack, [], tally, rng)
        try:
            answer = shopper.payments_call(
                "POST", "/refunds", json=body, headers=bearer(admin) | {"Idempotency-Key": uuid.uuid4().hex}
            )
        except RuntimeError as error:
            tally.error(str(error))
            continue
        if answer.status_code == 200:
            tally.count("admin refunds")


def kill_and_restart(stack: ChaosStack, tally: Tally, rng: random.Random, stop: threading.Event) -> None:
    """Every 6 to 12 seconds, SIGKILL the saga or a payments instance, wherever it is, and start it
    again. (A killed payments instance's partitions wait for its Kafka session to time out before the
    other instance takes them: its commands answer 503 meanwhile, and the shoppers retry.)"""
    while not stop.wait(rng.uniform(6.0, 12.0)):
        if rng.random() < 0.5:
            stack.saga.kill()
            time.sleep(rng.uniform(0.2, 1.5))
            stack.start_saga()
            tally.count("saga kills")
        else:
            victim = rng.choice(stack.payments)
            victim.kill()
            time.sleep(rng.uniform(0.2, 1.5))
            victim.start()
            tally.count("payments kills")


def run_load(stack: ChaosStack, seconds: float, shoppers: int, seed: int) -> Tally:
    """The mixed load for `seconds`, `shoppers` customers at a time, with kills throughout."""
    deployment = stack.deployment
    admin = deployment.admin_token()
    products = [created(stack.catalog.url, admin, stock=400, price="7.50")[0]["id"] for _ in range(6)]
    for product_id in products:
        replica_knows(deployment, product_id)
    tally = Tally()
    stop = threading.Event()
    deadline = time.monotonic() + seconds

    def shop(n: int) -> None:
        shopper = Shopper(stack, products, tally, random.Random(seed * 1000 + n))
        while time.monotonic() < deadline:
            try:
                shopper.journey()
            except Exception as error:  # a journey's failure is counted, never the end of the load
                tally.error(f"{type(error).__name__}: {error}")

    background = [
        threading.Thread(target=refund_some, args=(stack, tally, random.Random(seed + 1), stop)),
        threading.Thread(target=kill_and_restart, args=(stack, tally, random.Random(seed + 2), stop)),
    ]
    threads = [threading.Thread(target=shop, args=(n,)) for n in range(shoppers)] + background
    for thread in threads:
        thread.start()
    for thread in threads[:shoppers]:
        thread.join()
    stop.set()
    for thread in background:
        thread.join()
    return tally


@dataclass
class Ledger:
    """The check's result: counts, and every violation in words (none when the books balance)."""

    counts: dict[str, int]
    violations: list[str]

    @property
    def balanced(self) -> bool:
        return not self.violations


def ledger(stack: ChaosStack) -> Ledger:
    deployment = stack.deployment
    bootstrap = deployment.servers.kafka_bootstrap

    def log(name: str) -> list[Any]:
        return [
            event for event, _ in committed_events(bootstrap, topics.in_namespace(deployment.namespace, name))
        ]

    orders_log, payments_log, catalog_log = log(topics.ORDERS), log(topics.PAYMENTS), log(topics.CATALOG)
    placed: dict[int, OrderPlaced] = {}
    orders: dict[int, OrderState] = {}  # folded as the Order aggregate folds itself
    paid_times: Counter[int] = Counter()
    refunded_minor: Counter[int] = Counter()
    units_back: Counter[int] = Counter()
    for event in orders_log:
        number = getattr(event, "order_number", None)
        if number is None:
            continue
        if isinstance(event, OrderPlaced):
            placed[number] = event
        if event.aggregate_id.startswith(ORDER_PREFIX):
            orders[number] = ORDER.evolve(orders.get(number, ORDER.initial), event)
        if isinstance(event, OrderPaid):
            paid_times[number] += 1
        if isinstance(event, OrderRefunded):
            refunded_minor[number] += minor_units(event.amount)
            for unit in event.units:
                units_back[unit.product_id] += unit.qty

    def status_of(number: int) -> str:
        return orders.get(number, ORDER.initial).status or "pending"

    captured, given_back, captures = _gateway_money(deployment)
    violations: list[str] = []
    for number, order in placed.items():
        state = status_of(number)
        if state in ("pending", "confirmed"):
            violations.append(f"order {number} is still {state}")
        if paid_times[number] > 1 or captures[number] > 1:
            violations.append(
                f"order {number} paid {paid_times[number]} times, captured {captures[number]} times"
            )
        expected = minor_units(order.total) - refunded_minor[number] if state in ("paid", "refunded") else 0
        if captured[number] - given_back[number] != expected:
            violations.append(
                f"order {number} ({state}): captured {captured[number]} - refunded {given_back[number]}"
                f" != {expected}"
            )

    sold: Counter[int] = Counter()
    for number, order in placed.items():
        if paid_times[number]:
            for line in order.lines:
                sold[line.product_id] += line.qty
    products: dict[str, ProductState] = {}
    created_units: Counter[int] = Counter()
    for event in catalog_log:
        products[event.aggregate_id] = PRODUCT.evolve(
            products.get(event.aggregate_id, PRODUCT.initial), event
        )
        if isinstance(event, ProductCreated):
            created_units[event.product_id] += event.stock
        if isinstance(event, StockAdjusted):
            created_units[event.product_id] += event.delta
    for product in products.values():
        expected_on_hand = (
            created_units[product.product_id] - sold[product.product_id] + units_back[product.product_id]
        )
        if product.on_hand != expected_on_hand or product.reserved:
            violations.append(
                f"product {product.product_id}: on hand {product.on_hand} (held {product.reserved}),"
                f" expected {expected_on_hand} = created {created_units[product.product_id]}"
                f" - sold {sold[product.product_id]} + refunded back {units_back[product.product_id]}"
            )

    dead_letters = deployment.run_module("command_api.orders.saga_runner", "status", check=False)
    if dead_letters.returncode != 0:
        violations.append(f"the saga's dead letters are not empty:\n{dead_letters.stdout}")
    reconciled = deployment.run_module("payments", "reconcile", check=False)
    if reconciled.returncode != 0:
        violations.append(f"reconciliation found discrepancies:\n{reconciled.stdout}{reconciled.stderr}")

    by_status = Counter(status_of(number) for number in placed)
    counts = {
        "orders": len(placed),
        **{f"orders {name}": n for name, n in sorted(by_status.items())},
        "payments captured": sum(captures.values()),
        "declines recorded": sum(isinstance(event, PaymentFailed) for event in payments_log),
        "refunds recorded": sum(isinstance(event, PaymentRefunded) for event in payments_log),
        "money captured (minor units)": sum(captured.values()),
        "money refunded (minor units)": sum(given_back.values()),
    }
    return Ledger(counts, violations)


def _gateway_money(deployment: Deployment) -> tuple[Counter[int], Counter[int], Counter[int]]:
    """Per order, from the simulated gateway's own records: captured, refunded, and how many intents
    captured."""
    captured: Counter[int] = Counter()
    given_back: Counter[int] = Counter()
    captures: Counter[int] = Counter()
    with psycopg.connect(deployment.database_url("payments")) as conn:
        if conn.execute("SELECT to_regclass('simulated_payment_intents')").fetchone() == (None,):
            return captured, given_back, captures  # no payment was ever asked for
        for order_number, amount in conn.execute(
            "SELECT order_number, amount_minor FROM simulated_payment_intents WHERE status = 'succeeded'"
        ):
            captured[order_number] += amount
            captures[order_number] += 1
        for order_number, amount in conn.execute(
            "SELECT i.order_number, r.amount_minor FROM simulated_refunds r"
            " JOIN simulated_payment_intents i ON i.id = r.intent_id"
        ):
            given_back[order_number] += amount
    return captured, given_back, captures


def settled_ledger(stack: ChaosStack, within: float = 180) -> Ledger:
    """The ledger once the system has settled: every deadline passed, the saga caught up (or the last
    check, whatever it says, after `within` seconds)."""
    last: list[Ledger] = []

    def balanced() -> Ledger | None:
        last[:] = [ledger(stack)]
        return last[0] if last[0].balanced else None

    try:
        return eventually(balanced, within=within, what="the books balanced", every=3.0)
    except AssertionError:
        return last[0]


def run_chaos(stack: ChaosStack, seconds: float, shoppers: int, seed: int) -> tuple[Tally, Ledger]:
    tally = run_load(stack, seconds, shoppers, seed)
    for process in (stack.saga, *stack.payments):
        process.ensure_running()
    return tally, settled_ledger(stack)


def report(tally: Tally, books: Ledger, say: Callable[[str], None]) -> None:
    for name, value in sorted(tally.counts.items()):
        say(f"  {name}: {value}")
    for name, value in books.counts.items():
        say(f"  {name}: {value}")
    say("the books balance" if books.balanced else "VIOLATIONS:\n" + "\n".join(books.violations))
    if tally.first_error:
        say(f"  first client error: {tally.first_error}")
