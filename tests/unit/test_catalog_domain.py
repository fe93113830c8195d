"""Given events, when a command, then events: the Product aggregate's rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT, ProductState
from command_api.eventstore.model import Loaded
from event_schemas.catalog import (
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from event_schemas.envelope import Event
from event_schemas.money import Money

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def given(*decisions: object) -> Loaded[ProductState]:
    """A product 3003 after the events its decisions produced."""
    loaded = Loaded("product-3003", PRODUCT.initial, 0, 0)
    for decide in decisions:
        events: Sequence[Event] = decide(loaded)  # type: ignore[operator]
        state = loaded.state
        for event in events:
            state = PRODUCT.evolve(state, event)
        loaded = Loaded(loaded.aggregate_id, state, loaded.version + len(events), 0)
    return loaded


def created(stock: int = 10) -> object:
    return lambda p: domain.create(
        p, name="Mug", description="A mug", price=Money(amount=Decimal("19.99")), stock=stock, now=NOW
    )


def test_a_created_product_takes_the_number_of_its_aggregate() -> None:
    product = given(created())
    assert (product.state.product_id, product.state.stock, product.state.price) == (
        3003,
        10,
        Money(amount=Decimal("19.99")),
    )


def test_an_update_records_only_what_changed() -> None:
    [event] = domain.update(
        given(created()), name="Mug", description="A big mug", price=None, stock=None, now=NOW
    )
    assert isinstance(event, ProductUpdated)
    assert (event.name, event.description, event.price) == (None, "A big mug", None)


def test_an_update_that_changes_nothing_appends_nothing() -> None:
    assert domain.update(given(created()), name="Mug", description=None, price=None, stock=10, now=NOW) == []


def test_setting_the_stock_in_an_update_is_a_stock_adjustment() -> None:
    [event] = domain.update(given(created(10)), name=None, description=None, price=None, stock=4, now=NOW)
    assert isinstance(event, StockAdjusted)
    assert (event.delta, event.stock) == (-6, 4)


def test_a_deleted_product_cannot_be_changed_deleted_again_or_restocked() -> None:
    deleted = given(created(), lambda p: domain.delete(p, NOW))
    with pytest.raises(domain.ProductNotFound):
        domain.update(deleted, name="X", description=None, price=None, stock=None, now=NOW)
    with pytest.raises(domain.ProductNotFound):
        domain.delete(deleted, NOW)
    with pytest.raises(domain.ProductNotFound):
        domain.adjust_stock(deleted, delta=5, reason="restock", now=NOW)


def test_stock_never_goes_below_zero() -> None:
    with pytest.raises(domain.InsufficientStock):
        domain.adjust_stock(given(created(3)), delta=-4, reason="breakage", now=NOW)


def test_a_reservation_holds_units_once_per_order() -> None:
    reserved = given(created(10), lambda p: domain.reserve_stock(p, order_id="o-1", quantity=4, now=NOW))
    assert reserved.state.stock == 6
    assert domain.reserve_stock(reserved, order_id="o-1", quantity=4, now=NOW) == []


def test_a_reservation_beyond_the_stock_is_rejected_and_holds_nothing() -> None:
    [event] = domain.reserve_stock(given(created(3)), order_id="o-1", quantity=4, now=NOW)
    assert isinstance(event, StockReservationRejected)
    assert (event.reason, event.available) == ("insufficient_stock", 3)


def test_a_reservation_for_a_deleted_product_is_rejected() -> None:
    deleted = given(created(), lambda p: domain.delete(p, NOW))
    [event] = domain.reserve_stock(deleted, order_id="o-1", quantity=1, now=NOW)
    assert isinstance(event, StockReservationRejected) and event.reason == "product_unavailable"


def test_a_release_gives_back_exactly_what_was_reserved_and_only_once() -> None:
    reserved = given(created(10), lambda p: domain.reserve_stock(p, order_id="o-1", quantity=4, now=NOW))
    [event] = domain.release_stock(reserved, order_id="o-1", now=NOW)
    assert isinstance(event, StockReleased) and (event.quantity, event.stock) == (4, 10)
    released = given(
        created(10),
        lambda p: domain.reserve_stock(p, order_id="o-1", quantity=4, now=NOW),
        lambda p: domain.release_stock(p, order_id="o-1", now=NOW),
    )
    assert domain.release_stock(released, order_id="o-1", now=NOW) == []
    assert domain.release_stock(released, order_id="never-reserved", now=NOW) == []
    assert domain.reserve_stock(released, order_id="o-1", quantity=1, now=NOW) == []


def test_two_orders_cannot_be_promised_the_same_last_unit() -> None:
    one_left = given(created(1), lambda p: domain.reserve_stock(p, order_id="o-1", quantity=1, now=NOW))
    [event] = domain.reserve_stock(one_left, order_id="o-2", quantity=1, now=NOW)
    assert isinstance(event, StockReservationRejected)
    assert not isinstance(event, StockReserved)


def reserve(order_id: str, quantity: int, now: datetime = NOW) -> object:
    return lambda p: domain.reserve_stock(p, order_id=order_id, quantity=quantity, now=now)


def test_a_repeated_reservation_decides_nothing_and_keeps_its_first_outcome() -> None:
    held = given(created(stock=5), reserve("order-1", 3))
    assert domain.reserve_stock(held, order_id="order-1", quantity=3, now=NOW) == []
    assert held.state.outcomes["order-1"].reserved
    short = given(created(stock=1), reserve("order-2", 3))
    assert domain.reserve_stock(short, order_id="order-2", quantity=1, now=NOW) == []  # not held now either
    assert short.state.outcomes["order-2"].reason == "insufficient_stock"


def test_a_paid_reservation_leaves_stock_on_hand_once_and_free_stock_unchanged() -> None:
    product = given(
        created(stock=5),
        reserve("order-1", 2),
        lambda p: domain.commit_reservation(p, order_id="order-1", now=NOW),
    )
    assert (product.state.stock, product.state.reserved, product.state.on_hand) == (3, 0, 3)
    assert domain.commit_reservation(product, order_id="order-1", now=NOW) == []
    assert domain.release_stock(product, order_id="order-1", now=NOW) == []


def test_an_absolute_stock_update_counts_units_on_hand_and_keeps_what_orders_hold() -> None:
    product = given(created(stock=10), reserve("order-1", 3))
    assert (product.state.stock, product.state.on_hand) == (7, 10)
    counted = given(
        created(stock=10),
        reserve("order-1", 3),
        lambda p: domain.update(p, name=None, description=None, price=None, stock=12, now=NOW),
    )
    assert (counted.state.stock, counted.state.reserved, counted.state.on_hand) == (9, 3, 12)
    with pytest.raises(domain.InsufficientStock):
        domain.update(product, name=None, description=None, price=None, stock=2, now=NOW)


def test_settled_outcomes_are_forgotten_after_the_window_but_held_ones_are_kept() -> None:
    later = NOW + domain.OUTCOME_WINDOW + timedelta(minutes=1)
    product = given(
        created(stock=10),
        reserve("order-held", 1),
        reserve("order-released", 1),
        lambda p: domain.release_stock(p, order_id="order-released", now=NOW),
        reserve("order-new", 1, now=later),
    )
    assert set(product.state.outcomes) == {"order-held", "order-new"}
    assert product.state.held == {"order-held": 1, "order-new": 1}
