"""Products read model in PostgreSQL: the seed's columns plus currency, version and timestamps. A
deleted product keeps its row with `deleted_at` set, so a replay can never bring it back. `stock` is
what is still free to sell (the seed's meaning); `reserved` is what orders hold, so stock + reserved
is on hand. The same fold feeds the search index (projectors/catalog/search_index.py)."""

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
from read_models.catalog import PRODUCTS, PRODUCTS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    price       numeric(12, 2) NOT NULL CHECK (price > 0),
    currency    char(3) NOT NULL,
    stock       integer NOT NULL CHECK (stock >= 0),
    reserved    integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    version     integer NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz
)
"""

# For tables created before reservations were counted: no command made one then, so 0 is true of them.
ADD_RESERVED = (
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0)"
)

COLUMNS = (
    "id",
    "name",
    "description",
    "price",
    "currency",
    "stock",
    "reserved",
    "version",
    "created_at",
    "updated_at",
    "deleted_at",
)


def product_id(event: Event) -> int | None:
    return event.product_id if isinstance(event, ProductEvent) else None


@singledispatch
def _apply(event: Event, row: Row) -> Row:
    return row  # e.g. a rejected reservation: nothing visible changes


@_apply.register
def _updated(event: ProductUpdated, row: Row) -> Row:
    changed: Row = {
        key: value for key, value in (("name", event.name), ("description", event.description)) if value
    }
    if event.price is not None:
        changed |= {"price": event.price.amount, "currency": event.price.currency}
    return row | changed


@_apply.register
def _deleted(event: ProductDeleted, row: Row) -> Row:
    return row | {"deleted_at": event.occurred_at}


@_apply.register(StockAdjusted)
@_apply.register(StockReturned)
def _stock_adjusted(event: StockAdjusted | StockReturned, row: Row) -> Row:
    return row | {"stock": event.stock}


@_apply.register
def _stock_reserved(event: StockReserved, row: Row) -> Row:
    return row | {"stock": event.stock, "reserved": row["reserved"] + event.quantity}


@_apply.register(StockReleased)
@_apply.register(StockReservationCommitted)
def _reservation_ended(event: StockReleased | StockReservationCommitted, row: Row) -> Row:
    """Held units either return to `stock` (released) or leave the shop (committed: `stock` unchanged)."""
    return row | {"stock": event.stock, "reserved": row["reserved"] - event.quantity}


def apply(event: Event, row: Row | None) -> Row | None:
    """One event on one product row; an event for a product the fold has never seen changes nothing."""
    if isinstance(event, ProductCreated):
        return {
            "id": event.product_id,
            "name": event.name,
            "description": event.description,
            "price": event.price.amount,
            "currency": event.price.currency,
            "stock": event.stock,
            "reserved": 0,
            "created_at": event.occurred_at,
            "updated_at": event.occurred_at,
            "deleted_at": None,
        }
    if row is None:
        return None
    changed = _apply(event, row)
    return changed if changed is row else changed | {"updated_at": event.occurred_at}


def needs_current(events: Sequence[Event]) -> set[Hashable]:
    return rows_to_read(events, product_id, ProductCreated)


def fold(current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
    return fold_rows(current, events, product_id, apply)


class ProductsProjection:
    name = PRODUCTS
    table = PRODUCTS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.CATALOG)

    def schema(self, table: str) -> list[sql.Composed]:
        return [query(SCHEMA, table), query(ADD_RESERVED, table)]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return needs_current(events)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        return fold(current, events)
