"""The Product aggregate: pure decisions and the fold.

Stock is the number of units that can still be sold. A reservation for an order takes units out of
it at once (so two orders can never be promised the same unit) and remembers them per order, so that
a reservation is applied once and a release gives back exactly what was reserved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
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
    StockReservationRejected,
    StockReserved,
)
from event_schemas.envelope import Event
from event_schemas.money import Money


class CatalogError(Exception):
    """A command the catalog refuses."""


class ProductNotFound(CatalogError):
    pass


class InsufficientStock(CatalogError):
    pass


@dataclass(frozen=True)
class ProductState:
    exists: bool = False
    deleted: bool = False
    product_id: int = 0
    name: str = ""
    description: str = ""
    price: Money | None = None
    stock: int = 0
    # Units held per order, and every order a reservation was decided for (held, rejected or released).
    reservations: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    orders_seen: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return self.exists and not self.deleted


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


@_apply.register
def _reserved(event: StockReserved, state: ProductState) -> ProductState:
    reservations = dict(state.reservations) | {event.order_id: event.quantity}
    return replace(
        state,
        stock=event.stock,
        reservations=MappingProxyType(reservations),
        orders_seen=state.orders_seen | {event.order_id},
    )


@_apply.register
def _rejected(event: StockReservationRejected, state: ProductState) -> ProductState:
    return replace(state, orders_seen=state.orders_seen | {event.order_id})


@_apply.register
def _released(event: StockReleased, state: ProductState) -> ProductState:
    reservations = {order: qty for order, qty in state.reservations.items() if order != event.order_id}
    return replace(state, stock=event.stock, reservations=MappingProxyType(reservations))


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
    """Only what differs from the current state becomes an event; stock goes through StockAdjusted."""
    state = _require_active(product)
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
    if stock is not None and stock != state.stock:
        events.append(
            StockAdjusted(
                aggregate_id=product.aggregate_id,
                aggregate_version=version + 1,
                occurred_at=now,
                product_id=state.product_id,
                delta=stock - state.stock,
                stock=stock,
                reason="set by product update",
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


RejectionReason = Literal["insufficient_stock", "product_unavailable"]


def reserve_stock(
    product: Loaded[ProductState], *, order_id: str, quantity: int, now: datetime
) -> list[Event]:
    """Hold units for an order, once per order; a shortfall is recorded as a rejection, not raised,
    because the order saga reacts to it."""
    state = product.state
    if order_id in state.orders_seen:
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


def release_stock(product: Loaded[ProductState], *, order_id: str, now: datetime) -> list[Event]:
    """Give back what was reserved for the order, and only that; releasing twice changes nothing."""
    state = product.state
    quantity = state.reservations.get(order_id)
    if quantity is None:
        return []
    return [
        StockReleased(
            aggregate_id=product.aggregate_id,
            aggregate_version=product.version + 1,
            occurred_at=now,
            product_id=state.product_id,
            order_id=order_id,
            quantity=quantity,
            stock=state.stock + quantity,
        )
    ]
