"""Given events, when a command, then events: the Cart and Order aggregates' rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from command_api.eventstore.model import AggregateKind, Loaded
from command_api.orders import domain
from command_api.orders.domain import CART, ORDER, CartState, OrderState, Product
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.orders import OrderCancelled, OrderConfirmed, OrderExpired, OrderPlaced, OrderRejected

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = 7003
MUG = Product(1001, "Mug", Money(amount=Decimal("0.10")), stock=5, deleted=False)
LAMP = Product(2002, "Lamp", Money(amount=Decimal("19.99")), stock=1, deleted=False)


def folded(kind: AggregateKind[Any], loaded: Loaded[Any], events: Sequence[Event]) -> Loaded[Any]:
    state = loaded.state
    for event in events:
        state = kind.evolve(state, event)
    return Loaded(loaded.aggregate_id, state, loaded.version + len(events), 0)


def cart_with(*lines: tuple[Product, int]) -> Loaded[CartState]:
    cart: Loaded[CartState] = Loaded(domain.cart_aggregate_id(CUSTOMER), CART.initial, 0, 0)
    for product, qty in lines:
        events = domain.add_to_cart(
            cart, customer_id=CUSTOMER, product_id=product.product_id, product=product, qty=qty, now=NOW
        )
        cart = folded(CART, cart, events)
    return cart


def placed(cart: Loaded[CartState]) -> tuple[Loaded[CartState], Loaded[OrderState]]:
    order: Loaded[OrderState] = Loaded("order-5004", ORDER.initial, 0, 0)
    products = {MUG.product_id: MUG, LAMP.product_id: LAMP}
    cart_events, order_events = domain.place_order(
        cart, order, customer_id=CUSTOMER, products=products, now=NOW
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
            now=NOW,
        )[1][0],
        OrderPlaced,
    )
