"""SQL of the payments read model."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from read_models.payments import PAYMENTS_TABLE
from read_models.pool import Pool

SELECT_PAYMENT = sql.SQL(
    "SELECT order_number, customer_id, gateway, intent_id, status, amount_minor, currency, refunded_minor,"
    " refunds, failure, created_at, updated_at FROM {table} WHERE order_number = %s"
).format(table=sql.Identifier(PAYMENTS_TABLE))


class PaymentNotFound(LookupError):
    pass


async def payment_of(pool: Pool, order_number: int, customer_id: int | None) -> dict[str, Any]:
    """The order's payment; a customer's only (None: any, for admins)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(SELECT_PAYMENT, (order_number,))
        row = await cursor.fetchone()
    if row is None or (customer_id is not None and row["customer_id"] != customer_id):
        raise PaymentNotFound("payment not found")
    return row
