"""Payments read model: one row per order's payment, with its status, amount, the gateway's intent id
and the refunds made. Never a client secret: events carry none."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import singledispatch

from psycopg import sql

from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.payments import (
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
    PaymentSucceeded,
)
from projectors.runtime.projection import Row, fold_rows, query, rows_to_read, with_jsonb
from read_models.payments import PAYMENTS, PAYMENTS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    order_number   bigint PRIMARY KEY,
    customer_id    bigint NOT NULL,
    gateway        text NOT NULL,
    intent_id      text NOT NULL,
    status         text NOT NULL,
    amount_minor   bigint NOT NULL,
    currency       char(3) NOT NULL,
    refunded_minor bigint NOT NULL,
    refunds        jsonb NOT NULL,
    failure        text,
    version        integer NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
)
"""

COLUMNS = (
    "order_number",
    "customer_id",
    "gateway",
    "intent_id",
    "status",
    "amount_minor",
    "currency",
    "refunded_minor",
    "refunds",
    "failure",
    "version",
    "created_at",
    "updated_at",
)


def order_number(event: Event) -> int | None:
    return event.order_number if isinstance(event, PaymentEvent) else None


@singledispatch
def _apply(event: Event, row: Row) -> Row:
    return row


@_apply.register
def _succeeded(event: PaymentSucceeded, row: Row) -> Row:
    return row | {"status": "succeeded"}


@_apply.register
def _failed(event: PaymentFailed, row: Row) -> Row:
    return row | {"status": "failed", "failure": event.reason}


@_apply.register
def _refunded(event: PaymentRefunded, row: Row) -> Row:
    refund = {
        "refundId": event.refund_id,
        "amountMinor": event.amount_minor,
        "units": [{"productId": unit.product_id, "qty": unit.qty} for unit in event.units],
        "at": event.occurred_at.isoformat(),
    }
    return row | {
        "status": "refunded" if event.fully else row["status"],
        "refunded_minor": row["refunded_minor"] + event.amount_minor,
        "refunds": [*row["refunds"], refund],
    }


def apply(event: Event, row: Row | None) -> Row | None:
    if isinstance(event, PaymentInitiated):
        return {
            "order_number": event.order_number,
            "customer_id": event.customer_id,
            "gateway": event.gateway,
            "intent_id": event.intent_id,
            "status": "initiated",
            "amount_minor": event.amount_minor,
            "currency": event.currency,
            "refunded_minor": 0,
            "refunds": [],
            "failure": None,
            "created_at": event.occurred_at,
            "updated_at": event.occurred_at,
        }
    if row is None:
        return None
    return _apply(event, row) | {"updated_at": event.occurred_at}


class PaymentsProjection:
    name = PAYMENTS
    table = PAYMENTS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.PAYMENTS)

    def schema(self, table: str) -> list[sql.Composed]:
        return [
            query(SCHEMA, table),
            sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} (intent_id)").format(
                index=sql.Identifier(f"{table}_intent_idx"), table=sql.Identifier(table)
            ),
        ]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return rows_to_read(events, order_number, PaymentInitiated)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        rows = fold_rows(current, events, order_number, apply)
        return {key: with_jsonb(row, ("refunds",)) for key, row in rows.items()}
