"""Given events, when a command, then events: the Product aggregate's rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
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
