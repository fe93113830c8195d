"""The order saga's rules with in-memory ports: what each order event sets off, and that running a
step twice (a redelivery after a crash) holds and releases nothing twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

from command_api.orders.saga import OrderSaga, OrderView, Reservation, reservation_id
from event_schemas.money import Money
from event_schemas.orders import OrderCancelled, OrderLine, OrderPaid, OrderPlaced
from event_schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded, RefundedUnits

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Catalog:
    """Holds per (order, product), decided once, like the Product aggregate."""

    def __init__(self, stock: dict[int, int]) -> None:
        self.stock = stock
        self.held: dict[tuple[str, int], int] = {}
        self.first: dict[tuple[str, int], Reservation] = {}
        self.moves: Counter[str] = Counter()
        self.returned: set[str] = set()

    async def reserve(self, order_id: str, product_id: int, quantity: int) -> Reservation:
        key = (order_id, product_id)
        if key not in self.first:
            if quantity <= self.stock[product_id]:
                self.stock[product_id] -= quantity
                self.held[key] = quantity
                self.moves["reserved"] += 1
                self.first[key] = Reservation(product_id, True)
            else:
                self.first[key] = Reservation(product_id, False, "insufficient_stock")
        return self.first[key]

    async def release(self, order_id: str, product_id: int) -> None:
        quantity = self.held.pop((order_id, product_id), None)
        if quantity is not None:
            self.stock[product_id] += quantity
            self.moves["released"] += 1

    async def return_stock(self, order_id: str, refund_id: str, product_id: int, qty: int) -> None:
        if refund_id not in self.returned:
            self.returned.add(refund_id)
            self.stock[product_id] += qty

    async def commit(self, order_id: str, product_id: int) -> None:
        if self.held.pop((order_id, product_id), None) is not None:
            self.moves["committed"] += 1


class Orders:
    def __init__(self, lines: dict[int, list[int]], status: str = "pending") -> None:
        self.lines = lines
        self.status = status
        self.recorded: list[list[Reservation]] = []

    async def record_reservations(self, order_number: int, results: list[Reservation]) -> bool:
        self.recorded.append(results)
        if self.status != "pending":
            return self.status in ("rejected", "cancelled", "expired")
        self.status = "confirmed" if all(r.reserved for r in results) else "rejected"
        return False

    async def view(self, order_number: int, *, proven: bool = True) -> OrderView:
        return OrderView(self.status, tuple(self.lines[order_number]))

    async def expire(self, order_number: int) -> None:
        self.status = "expired"

    async def mark_paid(self, order_number: int, intent_id: str, amount_minor: int) -> bool:
        if self.status in ("rejected", "cancelled", "expired"):
            return False
        self.status = "paid"
        return True

    async def record_refund(
        self,
        order_number: int,
        refund_id: str,
        amount_minor: int,
        units: tuple[RefundedUnits, ...],
        fully: bool,
    ) -> None:
        self.status = "refunded" if fully else self.status


class Payments:
    def __init__(self) -> None:
        self.refunded: Counter[int] = Counter()

    async def refund_unclaimed(self, order_number: int) -> None:
        self.refunded[order_number] = 1


def order_placed(*lines: tuple[int, int]) -> OrderPlaced:
    return OrderPlaced(
        aggregate_id="order-5004",
        aggregate_version=1,
        occurred_at=NOW,
        order_number=5004,
        customer_id=7003,
        lines=tuple(
            OrderLine(line_no=n, product_id=p, item_name="x", qty=q, unit_price=Money(amount=Decimal(1)))
            for n, (p, q) in enumerate(lines, start=1)
        ),
        total=Money(amount=Decimal(len(lines))),
    )


def test_when_an_order_is_placed_every_line_is_reserved_once_however_often_it_is_delivered() -> None:
    catalog, orders = Catalog({1001: 5, 2002: 5}), Orders({5004: [1001, 2002]})
    saga = OrderSaga(catalog, orders, Payments())
    event = order_placed((1001, 2), (2002, 1))
    for _ in range(3):
        asyncio.run(saga.handle(event))
    assert catalog.stock == {1001: 3, 2002: 4}
    assert catalog.moves == Counter(reserved=2)
    assert orders.status == "confirmed"


def test_when_an_order_ends_its_holds_are_released_once() -> None:
    catalog, orders = Catalog({1001: 5}), Orders({5004: [1001]})
    saga = OrderSaga(catalog, orders, Payments())
    asyncio.run(saga.handle(order_placed((1001, 2))))
    cancelled = OrderCancelled(
        aggregate_id="order-5004", aggregate_version=3, occurred_at=NOW, order_number=5004, reason="customer"
    )
    for _ in range(2):
        asyncio.run(saga.handle(cancelled))
    assert catalog.stock == {1001: 5}
    assert catalog.moves == Counter(reserved=1, released=1)


class CancelledWhileReserving(Orders):
    """The order is pending when the saga looks, and cancelled by the time the holds are reported."""

    async def record_reservations(self, order_number: int, results: list[Reservation]) -> bool:
        self.status = "cancelled"
        return await super().record_reservations(order_number, results)


def test_a_hold_made_for_an_order_cancelled_meanwhile_is_given_back() -> None:
    catalog, orders = Catalog({1001: 5}), CancelledWhileReserving({5004: [1001]})
    asyncio.run(OrderSaga(catalog, orders, Payments()).handle(order_placed((1001, 2))))
    assert catalog.stock == {1001: 5}
    assert catalog.held == {}
    assert reservation_id(5004) == "order-5004"


class LaggingView(Orders):
    """A writer fenced a moment ago answers the unproven view: the order still pending there, though
    it has ended in the log."""

    async def view(self, order_number: int, *, proven: bool = True) -> OrderView:
        return OrderView("pending" if not proven else self.status, tuple(self.lines[order_number]))


def test_a_placement_read_from_a_lagging_view_holds_nothing_for_an_order_that_ended() -> None:
    for status in ("rejected", "cancelled", "expired"):
        catalog = Catalog({1001: 5})
        asyncio.run(
            OrderSaga(catalog, LaggingView({5004: [1001]}, status), Payments()).handle(
                order_placed((1001, 2))
            )
        )
        assert catalog.stock == {1001: 5}, status
        assert catalog.held == {}, status


def test_a_replay_of_an_old_orders_placement_reserves_nothing_whenever_it_was_placed() -> None:
    # The catalog has long forgotten the order's reservation (its outcomes are kept for a day), and
    # the saga's offsets were lost: the order's own state says the step is done.
    for status in ("confirmed", "paid", "refunded", "rejected", "cancelled", "expired"):
        catalog = Catalog({1001: 5})
        asyncio.run(
            OrderSaga(catalog, Orders({5004: [1001]}, status), Payments()).handle(order_placed((1001, 2)))
        )
        assert catalog.stock == {1001: 5}, status
        assert catalog.moves == Counter(), status


def test_a_declined_payment_leaves_the_order_payable() -> None:
    orders = Orders({5004: [1001]}, status="confirmed")
    declined = PaymentFailed(
        aggregate_id="payment-5004",
        aggregate_version=2,
        occurred_at=NOW,
        order_number=5004,
        intent_id="pi_1",
        attempt_id="ch_1",
        reason="Your card was declined.",
    )
    asyncio.run(OrderSaga(Catalog({1001: 5}), orders, Payments()).handle(declined))
    assert orders.status == "confirmed"


def refunded(*units: tuple[int, int]) -> PaymentRefunded:
    return PaymentRefunded(
        aggregate_id="payment-5004",
        aggregate_version=3,
        occurred_at=NOW,
        order_number=5004,
        intent_id="pi_1",
        refund_id="re_1",
        amount_minor=200,
        units=tuple(RefundedUnits(product_id=p, qty=q) for p, q in units),
        fully=True,
    )


def test_refunded_units_come_back_once_and_only_if_the_order_took_them() -> None:
    paid_catalog = Catalog({1001: 3})
    saga = OrderSaga(paid_catalog, Orders({5004: [1001]}, status="paid"), Payments())
    for _ in range(2):
        asyncio.run(saga.handle(refunded((1001, 2))))
    assert paid_catalog.stock == {1001: 5}
    # A late payment's refund: the order expired and its units went back to stock at expiry.
    expired_catalog = Catalog({1001: 5})
    asyncio.run(
        OrderSaga(expired_catalog, Orders({5004: [1001]}, "expired"), Payments()).handle(refunded((1001, 2)))
    )
    assert expired_catalog.stock == {1001: 5}


def test_when_an_order_is_paid_its_holds_leave_stock_once() -> None:
    catalog, orders = Catalog({1001: 5}), Orders({5004: [1001]})
    saga = OrderSaga(catalog, orders, Payments())
    asyncio.run(saga.handle(order_placed((1001, 2))))
    paid = OrderPaid(
        aggregate_id="order-5004",
        aggregate_version=3,
        occurred_at=NOW,
        order_number=5004,
        intent_id="pi_1",
        amount=Money(amount=Decimal(2)),
    )
    for _ in range(2):
        asyncio.run(saga.handle(paid))
    assert catalog.stock == {1001: 3}
    assert catalog.moves == Counter(reserved=1, committed=1)


def test_a_payment_that_succeeds_after_its_order_ended_is_refunded() -> None:
    payments = Payments()
    saga = OrderSaga(Catalog({1001: 5}), Orders({5004: [1001]}, status="expired"), payments)
    succeeded = PaymentSucceeded(
        aggregate_id="payment-5004",
        aggregate_version=2,
        occurred_at=NOW,
        order_number=5004,
        intent_id="pi_1",
        amount_minor=200,
    )
    asyncio.run(saga.handle(succeeded))
    assert payments.refunded == Counter({5004: 1})
