"""The orders side's replica of the catalog, folded from the catalog topic: what a cart may hold, at
what price, and how many units are still free to sell. The orders command side reads it to check a
cart and price an order (read_models/orders_replica.py), so the orders context never calls the
catalog's API. A deleted product keeps its row, marked, so a replay can never bring it back."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import singledispatch

from psycopg import sql

from event_schemas import topics
from event_schemas.catalog import (
    ProductCreated,
    ProductDeleted,
    ProductEvent,
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReservationCommitted,
    StockReserved,
    StockReturned,
)
from event_schemas.envelope import Event
from projectors.runtime.projection import Row, fold_rows, query, rows_to_read
from read_models.orders import ORDER_PRODUCTS, ORDER_PRODUCTS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    price      numeric(12, 2) NOT NULL,
    currency   char(3) NOT NULL,
    stock      integer NOT NULL CHECK (stock >= 0),
    deleted    boolean NOT NULL,
    version    integer NOT NULL,
    updated_at timestamptz NOT NULL
)
"""

COLUMNS = ("id", "name", "price", "currency", "stock", "deleted", "version", "updated_at")


def product_id(event: Event) -> int | None:
    return event.product_id if isinstance(event, ProductEvent) else None


@singledispatch
def _apply(event: Event, row: Row) -> Row:
    return row  # e.g. a rejected reservation: nothing an order reads changes


@_apply.register
def _updated(event: ProductUpdated, row: Row) -> Row:
    changed: Row = {} if event.name is None else {"name": event.name}
    if event.price is not None:
        changed |= {"price": event.price.amount, "currency": event.price.currency}
    return row | changed


@_apply.register
def _deleted(event: ProductDeleted, row: Row) -> Row:
    return row | {"deleted": True}


@_apply.register(StockAdjusted)
@_apply.register(StockReserved)
@_apply.register(StockReleased)
@_apply.register(StockReservationCommitted)
@_apply.register(StockReturned)
def _stock_moved(
    event: StockAdjusted | StockReserved | StockReleased | StockReservationCommitted | StockReturned, row: Row
) -> Row:
    """Every stock event carries the units free to sell after it (a commitment leaves them as they were)."""
    return row | {"stock": event.stock}


def apply(event: Event, row: Row | None) -> Row | None:
    """One event on one product's row; an event for a product never created changes nothing."""
    if isinstance(event, ProductCreated):
        return {
            "id": event.product_id,
            "name": event.name,
            "price": event.price.amount,
            "currency": event.price.currency,
            "stock": event.stock,
            "deleted": False,
            "updated_at": event.occurred_at,
        }
    if row is None:
        return None
    changed = _apply(event, row)
    return changed if changed is row else changed | {"updated_at": event.occurred_at}


def needs_current(events: Sequence[Event]) -> set[Hashable]:
    return rows_to_read(events, product_id, ProductCreated)


def fold(current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
    return fold_rows(current, events, product_id, apply)


class OrderProductsProjection:
    name = ORDER_PRODUCTS
    table = ORDER_PRODUCTS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.CATALOG)

    def schema(self, table: str) -> list[sql.Composed]:
        return [query(SCHEMA, table)]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return needs_current(events)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        return fold(current, events)
