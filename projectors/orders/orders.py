"""Orders read model: one row per order with its priced lines, its status and how it got there (the
history of its statuses, as JSON). A rejection keeps its reason code in `reason` and the products that
could not be reserved in `rejected_product_ids`; `txn_id` waits for the payments context."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import singledispatch
from typing import Any

from psycopg import sql

from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.money import amount_text
from event_schemas.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderEvent,
    OrderExpired,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderStatus,
)
from projectors.runtime.projection import Row, fold_rows, query, rows_to_read, with_jsonb
from read_models.orders import ORDERS, ORDERS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    order_number         bigint PRIMARY KEY,
    customer_id          bigint NOT NULL,
    status               text NOT NULL,
    amount               numeric(12, 2) NOT NULL,
    currency             char(3) NOT NULL,
    lines                jsonb NOT NULL,
    history              jsonb NOT NULL,
    reason               text,
    rejected_product_ids jsonb NOT NULL,
    payment_due          timestamptz,
    txn_id               text,
    refunded_amount      numeric(12, 2) NOT NULL DEFAULT 0,
    version              integer NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
)
"""

# A customer's orders, newest (highest number) first. Named after the table, so that a rebuild's
# shadow table gets an index of its own, renamed with the table when it is swapped in.
CUSTOMER_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {table} (customer_id, order_number)"
# Every customer's orders, newest first (the admins' list): a page without sorting the whole table.
PLACED_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {table} (created_at DESC, order_number DESC)"

COLUMNS = (
    "order_number",
    "customer_id",
    "status",
    "amount",
    "currency",
    "lines",
    "history",
    "reason",
    "rejected_product_ids",
    "payment_due",
    "txn_id",
    "refunded_amount",
    "version",
    "created_at",
    "updated_at",
)
JSONB_COLUMNS = ("lines", "history", "rejected_product_ids")


def order_number(event: Event) -> int | None:
    """Orders are keyed by their number; the orders topic's cart events are not theirs."""
    return event.order_number if isinstance(event, OrderEvent) else None


def status_change(status: OrderStatus, at: datetime, reason: str | None = None) -> dict[str, Any]:
    return {"status": status, "at": at.isoformat(), "reason": reason}


def _moved(row: Row, event: Event, status: OrderStatus, reason: str | None = None, **changed: Any) -> Row:
    """The row in its new status, with the change (and its reason, if it has one) at the end of its
    history."""
    history = [*row["history"], status_change(status, event.occurred_at, reason)]
    because = {} if reason is None else {"reason": reason}
    return row | changed | because | {"status": status, "history": history}


@singledispatch
def _apply(event: Event, row: Row) -> Row:
    return row


@_apply.register
def _confirmed(event: OrderConfirmed, row: Row) -> Row:
    return _moved(row, event, "confirmed", payment_due=event.payment_due)


@_apply.register
def _rejected(event: OrderRejected, row: Row) -> Row:
    return _moved(row, event, "rejected", event.reason, rejected_product_ids=list(event.product_ids))


@_apply.register
def _cancelled(event: OrderCancelled, row: Row) -> Row:
    return _moved(row, event, "cancelled", event.reason)


@_apply.register
def _paid(event: OrderPaid, row: Row) -> Row:
    return _moved(row, event, "paid", txn_id=event.intent_id)


@_apply.register
def _refunded(event: OrderRefunded, row: Row) -> Row:
    refunded = {"refunded_amount": row["refunded_amount"] + event.amount.amount}
    if event.fully:
        return _moved(row, event, "refunded", f"refund {event.refund_id}", **refunded)
    return row | refunded


@_apply.register
def _expired(event: OrderExpired, row: Row) -> Row:
    return _moved(row, event, "expired", payment_due=event.payment_due)


def placed(event: OrderPlaced) -> Row:
    return {
        "order_number": event.order_number,
        "customer_id": event.customer_id,
        "status": "pending",
        "amount": event.total.amount,
        "currency": event.total.currency,
        "lines": [
            {
                "lineNo": line.line_no,
                "productId": line.product_id,
                "itemName": line.item_name,
                "qty": line.qty,
                "price": amount_text(line.unit_price.amount),
            }
            for line in event.lines
        ],
        "history": [status_change("pending", event.occurred_at)],
        "reason": None,
        "rejected_product_ids": [],
        "payment_due": None,
        "txn_id": None,
        "refunded_amount": Decimal(0),
        "created_at": event.occurred_at,
        "updated_at": event.occurred_at,
    }


def apply(event: Event, row: Row | None) -> Row | None:
    """One event on one order's row; an event for an order never placed changes nothing."""
    if isinstance(event, OrderPlaced):
        return placed(event)
    if row is None:
        return None
    changed = _apply(event, row)
    return changed if changed is row else changed | {"updated_at": event.occurred_at}


def needs_current(events: Sequence[Event]) -> set[Hashable]:
    return rows_to_read(events, order_number, OrderPlaced)


def fold(current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
    return fold_rows(current, events, order_number, apply)


class OrdersProjection:
    name = ORDERS
    table = ORDERS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.ORDERS)

    def schema(self, table: str) -> list[sql.Composed]:
        return [
            query(SCHEMA, table),
            query(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS refunded_amount numeric(12, 2) NOT NULL DEFAULT 0",
                table,
            ),
            sql.SQL(CUSTOMER_INDEX).format(
                index=sql.Identifier(f"{table}_customer_idx"), table=sql.Identifier(table)
            ),
            sql.SQL(PLACED_INDEX).format(
                index=sql.Identifier(f"{table}_placed_idx"), table=sql.Identifier(table)
            ),
        ]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return needs_current(events)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        return {key: with_jsonb(row, JSONB_COLUMNS) for key, row in fold(current, events).items()}
