"""Where the payments context's read models live (in the payments database), and the read the
payments command side makes of its replica of the orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from psycopg import sql

from read_models.pool import Pool

# The payments side's replica of the orders (built from the orders topic): what may be paid, and how much.
PAYABLE_ORDERS = "payments-orders"
PAYABLE_ORDERS_TABLE = "payable_orders"
# Payments per order (built from the payments topic), served by the payments query side.
PAYMENTS = "payments"
PAYMENTS_TABLE = "payments"

SELECT_ORDER = sql.SQL(
    "SELECT order_number, customer_id, status, amount, currency, lines FROM {table} WHERE order_number = %s"
).format(table=sql.Identifier(PAYABLE_ORDERS_TABLE))


@dataclass(frozen=True)
class OrderedUnits:
    product_id: int
    qty: int
    unit_price: Decimal


@dataclass(frozen=True)
class PayableOrder:
    order_number: int
    customer_id: int
    status: str
    amount: Decimal
    currency: str
    lines: tuple[OrderedUnits, ...]


async def payable_order(pool: Pool, order_number: int) -> PayableOrder | None:
    """The order as the payments side last heard of it (None: never heard of). Raises
    psycopg.errors.UndefinedTable until the payments-orders projector has run."""
    async with pool.connection() as conn:
        cursor = await conn.execute(SELECT_ORDER, (order_number,))
        row = await cursor.fetchone()
    if row is None:
        return None
    lines = tuple(
        OrderedUnits(line["productId"], line["qty"], Decimal(line["price"])) for line in row["lines"]
    )
    return PayableOrder(
        row["order_number"], row["customer_id"], row["status"], row["amount"], row["currency"], lines
    )


SELECT_ORDER_OF_INTENT = sql.SQL("SELECT order_number FROM {table} WHERE intent_id = %s").format(
    table=sql.Identifier(PAYMENTS_TABLE)
)


async def order_of_intent(pool: Pool, intent_id: str) -> int | None:
    """The order whose payment is this gateway intent, as the payments read model has it."""
    async with pool.connection() as conn:
        cursor = await conn.execute(SELECT_ORDER_OF_INTENT, (intent_id,))
        row = await cursor.fetchone()
    return None if row is None else int(row["order_number"])
