"""Carts read model: one row per customer, holding the cart's lines as JSON in the order they were
added (the seed's line fields, camelCased, prices as decimal strings). A checkout empties the cart;
the row stays, so the customer's next line lands in the same cart."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import singledispatch
from typing import Any

from psycopg import sql

from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.money import amount_text
from event_schemas.orders import (
    CartCheckedOut,
    CartEvent,
    CartLineAdded,
    CartLineQuantityChanged,
    CartLineRemoved,
)
from projectors.runtime.projection import Row, fold_rows, query, with_jsonb
from read_models.orders import CARTS, CARTS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    customer_id bigint PRIMARY KEY,
    lines       jsonb NOT NULL,
    version     integer NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
)
"""

COLUMNS = ("customer_id", "lines", "version", "created_at", "updated_at")
JSONB_COLUMNS = ("lines",)

Line = dict[str, Any]


def customer_id(event: Event) -> int | None:
    """Carts are keyed by their customer; the orders topic's order events are not theirs."""
    return event.customer_id if isinstance(event, CartEvent) else None


@singledispatch
def _lines(event: Event, lines: list[Line]) -> list[Line]:
    return lines


@_lines.register
def _line_added(event: CartLineAdded, lines: list[Line]) -> list[Line]:
    at = event.occurred_at.isoformat()
    line = {
        "id": event.line_id,
        "productId": event.product_id,
        "itemName": event.item_name,
        "qty": event.qty,
        "price": amount_text(event.unit_price.amount),
        "currency": event.unit_price.currency,
        "createdAt": at,
        "updatedAt": at,
    }
    return [*lines, line]


@_lines.register
def _quantity_changed(event: CartLineQuantityChanged, lines: list[Line]) -> list[Line]:
    at = event.occurred_at.isoformat()
    return [
        line | {"qty": event.qty, "updatedAt": at} if line["id"] == event.line_id else line for line in lines
    ]


@_lines.register
def _line_removed(event: CartLineRemoved, lines: list[Line]) -> list[Line]:
    return [line for line in lines if line["id"] != event.line_id]


@_lines.register
def _checked_out(event: CartCheckedOut, lines: list[Line]) -> list[Line]:
    return []


def apply(event: Event, row: Row | None) -> Row | None:
    """One event on one cart's row; the cart comes into being with its first line."""
    if row is None:
        if not isinstance(event, CartLineAdded):
            return None
        row = {"customer_id": event.customer_id, "lines": [], "created_at": event.occurred_at}
    return row | {"lines": _lines(event, row["lines"]), "updated_at": event.occurred_at}


def needs_current(events: Sequence[Event]) -> set[Hashable]:
    """Carts the batch changes without having created them. A cart outlives its checkouts, so what
    creates one is its first event (version 1), not an event type."""
    created: set[Hashable] = set()
    needed: set[Hashable] = set()
    for event in events:
        key = customer_id(event)
        if key is None:
            continue
        if event.aggregate_version == 1:
            created.add(key)
        elif key not in created:
            needed.add(key)
    return needed


def fold(current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
    return fold_rows(current, events, customer_id, apply)


class CartsProjection:
    name = CARTS
    table = CARTS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.ORDERS)

    def schema(self, table: str) -> list[sql.Composed]:
        return [query(SCHEMA, table)]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return needs_current(events)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        return {key: with_jsonb(row, JSONB_COLUMNS) for key, row in fold(current, events).items()}
