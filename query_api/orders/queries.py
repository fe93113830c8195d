"""SQL of the carts and orders read models. Every lookup is by the caller's customer id: another
customer's order is answered exactly like one that does not exist. Only `all_orders` (admins) reads
every customer's."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from read_models.orders import CARTS_TABLE, ORDERS_TABLE
from read_models.pool import Pool

ORDER_COLUMNS = sql.SQL(
    "order_number, customer_id, status, amount, currency, lines, history, reason, rejected_product_ids, "
    "payment_due, txn_id, refunded_amount, created_at, updated_at"
)
CARTS = sql.Identifier(CARTS_TABLE)
ORDERS = sql.Identifier(ORDERS_TABLE)


class CartNotFound(LookupError):
    pass


class OrderNotFound(LookupError):
    pass


async def cart_of(pool: Pool, customer_id: int) -> dict[str, Any]:
    """The customer's cart row (its lines as JSON); a customer who never added a line has none."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL(
                "SELECT customer_id, lines, created_at, updated_at FROM {} WHERE customer_id = %s"
            ).format(CARTS),
            (customer_id,),
        )
        row = await cursor.fetchone()
    if row is None:
        raise CartNotFound("cart not found")
    return row


async def orders_of(
    pool: Pool, customer_id: int, limit: int, offset: int, status: str | None = None
) -> list[dict[str, Any]]:
    """A page of the customer's orders (in `status` only, if given), newest first: a customer's orders
    are numbered in the partition of their cart, so a higher number is a later order."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL(
                "SELECT {} FROM {} WHERE customer_id = %s AND (%s::text IS NULL OR status = %s)"
                " ORDER BY order_number DESC LIMIT %s OFFSET %s"
            ).format(ORDER_COLUMNS, ORDERS),
            (customer_id, status, status, limit, offset),
        )
        return await cursor.fetchall()


async def all_orders(pool: Pool, limit: int, offset: int, status: str | None = None) -> list[dict[str, Any]]:
    """A page of every customer's orders (in `status` only, if given), newest first. Order numbers are
    allocated per partition, so across customers only the time of placing orders them (the number
    breaks ties)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL(
                "SELECT {} FROM {} WHERE %s::text IS NULL OR status = %s"
                " ORDER BY created_at DESC, order_number DESC LIMIT %s OFFSET %s"
            ).format(ORDER_COLUMNS, ORDERS),
            (status, status, limit, offset),
        )
        return await cursor.fetchall()


async def order_of(pool: Pool, customer_id: int, order_number: int) -> dict[str, Any]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE order_number = %s AND customer_id = %s").format(
                ORDER_COLUMNS, ORDERS
            ),
            (order_number, customer_id),
        )
        row = await cursor.fetchone()
    if row is None:
        raise OrderNotFound("order not found")
    return row
