"""The payments side's replica of the orders, folded from the orders topic: which orders exist, whose
they are, their status and their exact total. The payments command side reads it to decide whether
an order can be paid and for how much (read_models/payments.py), never calling the orders API."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import singledispatch

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
    OrderRejected,
)
from projectors.runtime.projection import Row, fold_rows, query, rows_to_read, with_jsonb
from read_models.payments import PAYABLE_ORDERS, PAYABLE_ORDERS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    order_number bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    status       text NOT NULL,
    amount       numeric(12, 2) NOT NULL,
    currency     char(3) NOT NULL,
    lines        jsonb NOT NULL,
    version      integer NOT NULL,
    updated_at   timestamptz NOT NULL
)
"""

COLUMNS = ("order_number", "customer_id", "status", "amount", "currency", "lines", "version", "updated_at")

STATUS_AFTER: dict[type[Event], str] = {
    OrderConfirmed: "confirmed",
    OrderRejected: "rejected",
    OrderCancelled: "cancelled",
    OrderExpired: "expired",
    OrderPaid: "paid",
}


def order_number(event: Event) -> int | None:
    return event.order_number if isinstance(event, OrderEvent) else None


@singledispatch
def apply(event: Event, row: Row | None) -> Row | None:
    status = STATUS_AFTER.get(type(event))
    if row is None or status is None:
        return row
    return row | {"status": status, "updated_at": event.occurred_at}


@apply.register
def _placed(event: OrderPlaced, row: Row | None) -> Row | None:
    return {
        "order_number": event.order_number,
        "customer_id": event.customer_id,
        "status": "pending",
        "amount": event.total.amount,
        "currency": event.total.currency,
        "lines": [
            {"productId": line.product_id, "qty": line.qty, "price": amount_text(line.unit_price.amount)}
            for line in event.lines
        ],
        "updated_at": event.occurred_at,
    }


class PayableOrdersProjection:
    name = PAYABLE_ORDERS
    table = PAYABLE_ORDERS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.ORDERS)

    def schema(self, table: str) -> list[sql.Composed]:
        return [query(SCHEMA, table)]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return rows_to_read(events, order_number, OrderPlaced)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        return {
            key: with_jsonb(row, ("lines",))
            for key, row in fold_rows(current, events, order_number, apply).items()
        }
