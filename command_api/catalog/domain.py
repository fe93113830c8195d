"""The Product aggregate: pure decisions and the fold.

`stock` is the number of units that can still be sold. A reservation for an order takes units out of
it at once (so two orders can never be promised the same unit) and holds them per order until the
order is paid (the hold is committed: the units leave stock on hand for good) or fails (the hold is
released back to `stock`). Units on hand = `stock` + units held.

Each order's first reservation outcome is remembered, so a repeated reservation (the saga retrying
after a crash) answers the same and holds nothing twice. Outcomes of orders whose hold is settled are
forgotten after OUTCOME_WINDOW, so the bookkeeping does not grow with every order ever placed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import singledispatch
from types import MappingProxyType
from typing import Literal

from command_api.eventstore.model import AggregateKind, Loaded
from event_schemas.catalog import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReservationCommitted,
    StockReservationRejected,
    StockReserved,
    StockReturned,
)
from event_schemas.envelope import Event
from event_schemas.money import AmountNotInCurrency, Money, minor_units


class CatalogError(Exception):
    """A command the catalog refuses."""


class ProductNotFound(CatalogError):
    pass


class InsufficientStock(CatalogError):
    pass


class PriceNotInCurrency(CatalogError):
    """A price finer than its currency's smallest unit (19.99 JPY): it could be ordered but never paid."""

    field = "price"  # answered as that field's validation error


def _require_payable(price: Money) -> None:
    try:
        minor_units(price)
    except AmountNotInCurrency as refused:
        raise PriceNotInCurrency(str(refused)) from refused


RejectionReason = Literal["insufficient_stock", "product_unavailable"]

# How long the outcome of a settled reservation is remembered for a repeated reservation.
OUTCOME_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class ReservationOutcome:
    """What the first reservation for an order decided."""

    order_id: str
    quantity: int
    reserved: bool
    reason: RejectionReason | None
    decided_at: datetime


@dataclass(frozen=True)
class ProductState:
    exists: bool = False
    deleted: bool = False
    product_id: int = 0
    name: str = ""
    description: str = ""
    price: Money | None = None
    stock: int = 0
    # Units held per order, and the first outcome of each order's reservation (in decision order).
    held: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    outcomes: MappingProxyType[str, ReservationOutcome] = field(default_factory=lambda: MappingProxyType({}))
    # Refunds whose units came back (refunds are rare: kept for the product's life).
    returns: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return self.exists and not self.deleted

    @property
    def reserved(self) -> int:
        return sum(self.held.values())

    @property
    def on_hand(self) -> int:
        return self.stock + self.reserved


@singledispatch
def _apply(event: Event, state: ProductState) -> ProductState:
    return state


@_apply.register
def _created(event: ProductCreated, state: ProductState) -> ProductState:
    return ProductState(
        True, False, event.product_id, event.name, event.description, event.price, event.stock
    )


@_apply.register
def _updated(event: ProductUpdated, state: ProductState) -> ProductState:
    return replace(
        state,
        name=state.name if event.name is None else event.name,
        description=state.description if event.description is None else event.description,
        price=state.price if event.price is None else event.price,
    )


@_apply.register
def _deleted(event: ProductDeleted, state: ProductState) -> ProductState:
    return replace(state, deleted=True)


@_apply.register
def _adjusted(event: StockAdjusted, state: ProductState) -> ProductState:
    return replace(state, stock=event.stock)


def _decided(state: ProductState, outcome: ReservationOutcome) -> MappingProxyType[str, ReservationOutcome]:
    """Remember the outcome, and forget settled ones (nothing held) older than the window."""
    cutoff = outcome.decided_at - OUTCOME_WINDOW
    outcomes = dict(state.outcomes)
    for order_id, earlier in state.outcomes.items():
        if earlier.decided_at >= cutoff:
            break
        if order_id not in state.held:
            del outcomes[order_id]
    outcomes[outcome.order_id] = outcome
    return MappingProxyType(outcomes)


@_apply.register
def _reserved(event: StockReserved, state: ProductState) -> ProductState:
    outcome = ReservationOutcome(event.order_id, event.quantity, True, None, event.occurred_at)
    return replace(
        state,
        stock=event.stock,
        held=MappingProxyType(dict(state.held) | {event.order_id: event.quantity}),
        outcomes=_decided(state, outcome),
    )


@_apply.register
def _rejected(event: StockReservationRejected, state: ProductState) -> ProductState:
    outcome = ReservationOutcome(event.order_id, event.quantity, False, event.reason, event.occurred_at)
    return replace(state, outcomes=_decided(state, outcome))


def _settled(state: ProductState, order_id: str, stock: int) -> ProductState:
    held = {order: qty for order, qty in state.held.items() if order != order_id}
    return replace(state, stock=stock, held=MappingProxyType(held))


@_apply.register
def _released(event: StockReleased, state: ProductState) -> ProductState:
    return _settled(state, event.order_id, event.stock)


@_apply.register
def _committed(event: StockReservationCommitted, state: ProductState) -> ProductState:
    return _settled(state, event.order_id, event.stock)


@_apply.register
def _returned(event: StockReturned, state: ProductState) -> ProductState:
    return replace(state, stock=event.stock, returns=state.returns | {event.refund_id})


def evolve(state: ProductState, event: Event) -> ProductState:
    return _apply(event, state)


PRODUCT = AggregateKind[ProductState](
    name="Product", initial=ProductState(), evolve=evolve, id_prefix="product-"
)


def product_aggregate_id(product_id: int) -> str:
    return PRODUCT.numbered_id(product_id)


def _number(product: Loaded[ProductState]) -> int:
    return int(product.aggregate_id.removeprefix("product-"))


def create(
    product: Loaded[ProductState], *, name: str, description: str, price: Money, stock: int, now: datetime
) -> list[Event]:
    _require_payable(price)
    return [
        ProductCreated(
            aggregate_id=product.aggregate_id,
            aggregate_version=product.version + 1,
            occurred_at=now,
            product_id=_number(product),
            name=name,
            description=description,
            price=price,
            stock=stock,
        )
    ]


def _require_active(product: Loaded[ProductState]) -> ProductState:
    if not product.state.active:
        raise ProductNotFound("product not found")
    return product.state


def update(
    product: Loaded[ProductState],
    *,
    name: str | None,
    description: str | None,
    price: Money | None,
    stock: int | None,
    now: datetime,
) -> list[Event]:
    """Only what differs from the current state becomes an event; stock goes through StockAdjusted.

    `stock` here is a count of the units on hand: the units held for orders stay held, and the units
    free to sell become `stock` minus those (an update can therefore never hand out held units)."""
    state = _require_active(product)
    if price is not None:
        _require_payable(price)
    changes = {
        "name": name if name is not None and name != state.name else None,
        "description": description if description is not None and description != state.description else None,
        "price": price if price is not None and price != state.price else None,
    }
    events: list[Event] = []
    version = product.version
    if any(value is not None for value in changes.values()):
        version += 1
        events.append(
            ProductUpdated(
                aggregate_id=product.aggregate_id,
                aggregate_version=version,
                occurred_at=now,
                product_id=state.product_id,
                **changes,
            )
        )
    if stock is not None and stock != state.on_hand:
        if stock < state.reserved:
            raise InsufficientStock(
                f"{state.reserved} units are held for orders; stock on hand cannot be set below that"
            )
        events.append(
            StockAdjusted(
                aggregate_id=product.aggregate_id,
                aggregate_version=version + 1,
                occurred_at=now,
                product_id=state.product_id,
                delta=stock - state.on_hand,
                stock=stock - state.reserved,
                reason="counted on hand by product update",
            )
        )
    return events


def delete(product: Loaded[ProductState], now: datetime) -> list[Event]:
    state = _require_active(product)
    return [
        ProductDeleted(
            aggregate_id=product.aggregate_id,
            aggregate_version=product.version + 1,
            occurred_at=now,
            product_id=state.product_id,
        )
    ]


def adjust_stock(product: Loaded[ProductState], *, delta: int, reason: str, now: datetime) -> list[Event]:
    state = _require_active(product)
    if state.stock + delta < 0:
        raise InsufficientStock(f"only {state.stock} in stock; cannot remove {-delta}")
    return [
        StockAdjusted(
            aggregate_id=product.aggregate_id,
            aggregate_version=product.version + 1,
            occurred_at=now,
            product_id=state.product_id,
            delta=delta,
            stock=state.stock + delta,
            reason=reason,
        )
    ]


def reserve_stock(
    product: Loaded[ProductState], *, order_id: str, quantity: int, now: datetime
) -> list[Event]:
    """Hold units for an order, once per order: a repeated reservation decides nothing (its first
    outcome stands). A shortfall is recorded as a rejection, not raised, because the saga reacts to it.
    A product that never existed has no aggregate to decide on: the store refuses before this runs."""
    state = product.state
    if order_id in state.outcomes or order_id in state.held:
        return []
    reason: RejectionReason | None = None
    if not state.active:
        reason = "product_unavailable"
    elif quantity > state.stock:
        reason = "insufficient_stock"
    envelope = {
        "aggregate_id": product.aggregate_id,
        "aggregate_version": product.version + 1,
        "occurred_at": now,
        "product_id": state.product_id or _number(product),
        "order_id": order_id,
        "quantity": quantity,
    }
    if reason is not None:
        return [StockReservationRejected(**envelope, available=state.stock, reason=reason)]
    return [StockReserved(**envelope, stock=state.stock - quantity)]


def _end_hold(
    product: Loaded[ProductState],
    order_id: str,
    now: datetime,
    ended: type[StockReleased | StockReservationCommitted],
    stock_after: Callable[[int], int],
) -> list[Event]:
    """End what is held for the order, once: nothing is held any more after it."""
    state = product.state
    quantity = state.held.get(order_id)
    if quantity is None:
        return []
    return [
        ended(
            aggregate_id=product.aggregate_id,
            aggregate_version=product.version + 1,
            occurred_at=now,
            product_id=state.product_id,
            order_id=order_id,
            quantity=quantity,
            stock=stock_after(quantity),
        )
    ]


def release_stock(product: Loaded[ProductState], *, order_id: str, now: datetime) -> list[Event]:
    """Give back what is held for the order, and only that; releasing twice changes nothing."""
    return _end_hold(product, order_id, now, StockReleased, lambda held: product.state.stock + held)


def commit_reservation(product: Loaded[ProductState], *, order_id: str, now: datetime) -> list[Event]:
    """The order is paid: what is held for it leaves stock on hand for good (once); the units free to
    sell do not change."""
    return _end_hold(product, order_id, now, StockReservationCommitted, lambda _: product.state.stock)


def return_stock(
    product: Loaded[ProductState], *, order_id: str, refund_id: str, quantity: int, now: datetime
) -> list[Event]:
    """Refunded units come back on hand and free to sell, once per refund (a deleted product's too:
    they are in the warehouse, though nobody can order them)."""
    state = product.state
    if refund_id in state.returns:
        return []
    return [
        StockReturned(
            aggregate_id=product.aggregate_id,
            aggregate_version=product.version + 1,
            occurred_at=now,
            product_id=state.product_id,
            order_id=order_id,
            refund_id=refund_id,
            quantity=quantity,
            stock=state.stock + quantity,
        )
    ]
