"""Given events, when a command, then events: the Cart and Order aggregates' rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from command_api.eventstore.model import AggregateKind, Loaded
from command_api.orders import domain
from command_api.orders.domain import CART, ORDER, CartState, HoldingLimits, OrderState, Product
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.orders import (
    CartCheckedOut,
    OrderCancelled,
    OrderConfirmed,
    OrderExpired,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
)
from event_schemas.registry import REGISTRY

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = 7003
MUG = Product(1001, "Mug", Money(amount=Decimal("0.10")), stock=5, deleted=False)
LAMP = Product(2002, "Lamp", Money(amount=Decimal("19.99")), stock=1, deleted=False)
TEAPOT = Product(3003, "Teapot", Money(amount=Decimal("30.00")), stock=1_000, deleted=False)
PRODUCTS = {product.product_id: product for product in (MUG, LAMP, TEAPOT)}
ROOMY = HoldingLimits(max_open_orders=100, max_held_units=100_000)
# Two open orders and ten units at most.
TIGHT = HoldingLimits(max_open_orders=2, max_held_units=10)


def folded(kind: AggregateKind[Any], loaded: Loaded[Any], events: Sequence[Event]) -> Loaded[Any]:
    state = loaded.state
    for event in events:
        state = kind.evolve(state, event)
    return Loaded(loaded.aggregate_id, state, loaded.version + len(events), 0)


def cart_with(
    *lines: tuple[Product, int], cart: Loaded[CartState] | None = None, limits: HoldingLimits = ROOMY
) -> Loaded[CartState]:
    cart = cart or Loaded(domain.cart_aggregate_id(CUSTOMER), CART.initial, 0, 0)
    for product, qty in lines:
        events = domain.add_to_cart(
            cart,
            customer_id=CUSTOMER,
            product_id=product.product_id,
            product=product,
            qty=qty,
            limits=limits,
            now=NOW,
        )
        cart = folded(CART, cart, events)
    return cart


def placed(
    cart: Loaded[CartState],
    number: int = 5004,
    *,
    orders: dict[int, OrderState] | None = None,
    limits: HoldingLimits = ROOMY,
) -> tuple[Loaded[CartState], Loaded[OrderState]]:
    order: Loaded[OrderState] = Loaded(f"order-{number}", ORDER.initial, 0, 0)
    cart_events, order_events = domain.place_order(
        cart, order, customer_id=CUSTOMER, products=PRODUCTS, orders=orders or {}, limits=limits, now=NOW
    )
    return folded(CART, cart, cart_events), folded(ORDER, order, order_events)


def test_adding_a_product_already_in_the_cart_adds_to_its_line() -> None:
    cart = cart_with((MUG, 2), (MUG, 3))
    [line] = cart.state.lines
    assert (line.qty, line.line_id // domain.LINE_SLOTS) == (5, CUSTOMER)


def test_a_cart_line_cannot_ask_for_more_than_is_available_or_for_a_withdrawn_product() -> None:
    with pytest.raises(domain.NotEnoughStock):
        cart_with((MUG, 4), (MUG, 2))
    with pytest.raises(domain.ProductUnavailable):
        cart_with((Product(3003, "Gone", Money(amount=Decimal(1)), 9, deleted=True), 1))


def test_placing_an_order_prices_it_exactly_and_empties_the_cart() -> None:
    cart, order = placed(cart_with((MUG, 3), (LAMP, 1)))
    assert cart.state.lines == ()
    assert order.state.status == "pending"
    assert order.state.total == Money(amount=Decimal("20.29"))
    with pytest.raises(domain.CartEmpty):
        placed(cart)


def test_an_order_is_confirmed_when_every_line_is_held_and_rejected_when_one_is_short() -> None:
    _, order = placed(cart_with((MUG, 1), (LAMP, 1)))
    confirmed = domain.record_reservations(
        order, results={1001: (True, None), 2002: (True, None)}, payment_window=timedelta(minutes=30), now=NOW
    )
    assert isinstance(confirmed[0], OrderConfirmed)
    assert confirmed[0].payment_due == NOW + timedelta(minutes=30)
    rejected = domain.record_reservations(
        order,
        results={1001: (True, None), 2002: (False, "insufficient_stock")},
        payment_window=timedelta(minutes=30),
        now=NOW,
    )
    assert isinstance(rejected[0], OrderRejected)
    assert rejected[0].product_ids == (2002,)


def test_an_order_no_longer_pending_records_nothing_so_the_saga_releases_what_it_holds() -> None:
    _, order = placed(cart_with((MUG, 1)))
    cancelled = folded(ORDER, order, domain.cancel(order, customer_id=CUSTOMER, reason="customer", now=NOW))
    assert (
        domain.record_reservations(
            cancelled, results={1001: (True, None)}, payment_window=timedelta(minutes=30), now=NOW
        )
        == []
    )


def test_only_the_documented_transitions_are_allowed() -> None:
    _, order = placed(cart_with((MUG, 1)))
    rejected = folded(
        ORDER,
        order,
        domain.record_reservations(
            order,
            results={1001: (False, "insufficient_stock")},
            payment_window=timedelta(minutes=30),
            now=NOW,
        ),
    )
    with pytest.raises(domain.IllegalTransition):
        domain.cancel(rejected, customer_id=CUSTOMER, reason="customer", now=NOW)
    with pytest.raises(domain.OrderNotFound):  # another customer's order is not theirs to cancel
        domain.cancel(order, customer_id=CUSTOMER + 1, reason="customer", now=NOW)
    assert isinstance(
        domain.cancel(order, customer_id=CUSTOMER, reason="customer", now=NOW)[0], OrderCancelled
    )


def test_a_confirmed_order_expires_only_past_its_deadline() -> None:
    _, order = placed(cart_with((MUG, 1)))
    window = timedelta(minutes=30)
    confirmed = folded(
        ORDER,
        order,
        domain.record_reservations(order, results={1001: (True, None)}, payment_window=window, now=NOW),
    )
    assert domain.expire(confirmed, now=NOW + window - timedelta(seconds=1)) == []
    assert isinstance(domain.expire(confirmed, now=NOW + window)[0], OrderExpired)
    assert domain.expire(order, now=NOW + window) == []  # pending: nothing to expire


def test_placing_an_order_creates_the_order_as_version_one() -> None:
    _, order = placed(cart_with((MUG, 1)))
    assert order.version == 1
    assert isinstance(
        domain.place_order(
            cart_with((MUG, 1)),
            Loaded("order-9004", ORDER.initial, 0, 0),
            customer_id=CUSTOMER,
            products={1001: MUG},
            orders={},
            limits=ROOMY,
            now=NOW,
        )[1][0],
        OrderPlaced,
    )


# What one customer may hold at once: open orders (placed, not yet paid or ended) and their units.


def confirmed(order: Loaded[OrderState]) -> Loaded[OrderState]:
    held = {line.product_id: (True, None) for line in order.state.lines}
    window = timedelta(minutes=30)
    return folded(
        ORDER, order, domain.record_reservations(order, results=held, payment_window=window, now=NOW)
    )


def ended(order: Loaded[OrderState], how: str) -> OrderState:
    """The order after it was paid, rejected, cancelled or expired."""
    events: list[Event]
    if how == "rejected":
        short: dict[int, domain.ReservationResult] = {
            line.product_id: (False, "insufficient_stock") for line in order.state.lines
        }
        window = timedelta(minutes=30)
        events = domain.record_reservations(order, results=short, payment_window=window, now=NOW)
    elif how == "cancelled":
        events = domain.cancel(order, customer_id=CUSTOMER, reason="customer", now=NOW)
    else:
        order = confirmed(order)
        assert order.state.total is not None
        events = (
            domain.expire(order, now=NOW + timedelta(hours=1))
            if how == "expired"
            else [
                OrderPaid(
                    aggregate_id=order.aggregate_id,
                    aggregate_version=order.version + 1,
                    occurred_at=NOW,
                    order_number=order.state.order_number,
                    intent_id="pi_1",
                    amount=order.state.total,
                )
            ]
        )
    after: Loaded[OrderState] = folded(ORDER, order, events)
    assert after.state.status == how
    return after.state


def counted(cart: Loaded[CartState]) -> list[int]:
    return [order.order_number for order in cart.state.open_orders]


def test_a_customer_with_as_many_open_orders_as_one_may_have_cannot_place_another() -> None:
    cart, first = placed(cart_with((TEAPOT, 1)), 1004, limits=TIGHT)
    cart, second = placed(cart_with((TEAPOT, 1), cart=cart), 2004, orders={1004: first.state}, limits=TIGHT)
    seen = {1004: first.state, 2004: confirmed(second).state}  # one pending, one awaiting payment
    with pytest.raises(domain.TooManyOpenOrders, match=r"2 open orders.*\(2\): pay or cancel"):
        placed(cart_with((TEAPOT, 1), cart=cart), 3004, orders=seen, limits=TIGHT)


@pytest.mark.parametrize("end", ["paid", "rejected", "cancelled", "expired"])
def test_an_order_that_ended_frees_its_place_and_the_cart_stops_counting_it(end: str) -> None:
    cart, first = placed(cart_with((TEAPOT, 1)), 1004, limits=TIGHT)
    cart, second = placed(cart_with((TEAPOT, 1), cart=cart), 2004, orders={1004: first.state}, limits=TIGHT)
    full = cart_with((TEAPOT, 1), cart=cart)
    cart_events, _ = domain.place_order(
        full,
        Loaded("order-3004", ORDER.initial, 0, 0),
        customer_id=CUSTOMER,
        products=PRODUCTS,
        orders={1004: ended(first, end), 2004: second.state},
        limits=TIGHT,
        now=NOW,
    )
    [checked_out] = cart_events
    assert isinstance(checked_out, CartCheckedOut) and checked_out.ended_orders == (1004,)
    assert counted(folded(CART, full, cart_events)) == [2004, 3004]


def test_an_order_placed_after_the_customers_orders_were_read_counts_as_open() -> None:
    # Two POST /orders at once read the customer's orders before either was placed (none were open);
    # the cart then decides one after the other, and the second finds the first in it, unread.
    one = HoldingLimits(max_open_orders=1, max_held_units=1_000)
    read_before: dict[int, OrderState] = {}
    cart, _ = placed(cart_with((TEAPOT, 1)), 1004, orders=read_before, limits=one)
    with pytest.raises(domain.TooManyOpenOrders):
        placed(cart_with((TEAPOT, 1), cart=cart), 2004, orders=read_before, limits=one)


def test_open_orders_and_the_new_one_may_hold_no_more_units_than_one_customer_may() -> None:
    cart, first = placed(cart_with((TEAPOT, 6)), 1004, limits=TIGHT)
    more = cart_with((TEAPOT, 5), cart=cart, limits=TIGHT)
    with pytest.raises(domain.TooManyUnitsHeld, match=r"hold 6 units and this order would add 5.*most 10"):
        placed(more, 2004, orders={1004: confirmed(first).state}, limits=TIGHT)
    cart, _ = placed(more, 2004, orders={1004: ended(first, "paid")}, limits=TIGHT)
    assert cart.state.open_orders == (domain.OpenOrder(2004, 5),)


def test_a_cart_of_more_units_than_one_customer_may_hold_is_refused_as_it_grows() -> None:
    cart = cart_with((TEAPOT, 6), (MUG, 4), limits=TIGHT)  # ten units: as many as one may hold
    with pytest.raises(domain.TooManyUnitsHeld, match="would hold 11 units"):
        cart_with((TEAPOT, 1), cart=cart, limits=TIGHT)
    teapots = cart.state.line_for(TEAPOT.product_id)
    assert teapots is not None

    def change_to(qty: int) -> list[Event]:
        return domain.change_quantity(
            cart,
            customer_id=CUSTOMER,
            line_id=teapots.line_id,
            product=TEAPOT,
            qty=qty,
            limits=TIGHT,
            now=NOW,
        )

    with pytest.raises(domain.TooManyUnitsHeld):
        change_to(7)
    assert change_to(5)  # lowering a quantity always works


def test_a_checkout_recorded_before_orders_were_counted_is_read_as_ending_none() -> None:
    cart, _ = placed(cart_with((MUG, 1)), 1004)
    cart = cart_with((MUG, 2), cart=cart)
    current = CartCheckedOut(
        aggregate_id=cart.aggregate_id,
        aggregate_version=cart.version + 1,
        occurred_at=NOW,
        customer_id=CUSTOMER,
        order_number=2004,
        ended_orders=(1004,),
    )
    version_1 = orjson.loads(REGISTRY.to_bytes(current))
    version_1["schema_version"] = 1
    del version_1["payload"]["ended_orders"]
    read = REGISTRY.from_bytes(orjson.dumps(version_1))
    assert isinstance(read, CartCheckedOut) and read.ended_orders == ()
    assert counted(folded(CART, cart, [read])) == [1004, 2004]
    assert folded(CART, cart, [read]).state.open_orders[-1].units == 2
