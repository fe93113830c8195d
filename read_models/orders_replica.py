"""Reading the orders side's replica of the catalog (projectors/orders/products.py), for the orders
command side (checking a cart, pricing an order) and the cart's query (current prices and stock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from psycopg import sql

from read_models.orders import ORDER_PRODUCTS_TABLE
from read_models.pool import Pool

SELECT_PRODUCTS = sql.SQL(
    "SELECT id, name, price, currency, stock, deleted, version FROM {table} WHERE id = ANY(%s)"
).format(table=sql.Identifier(ORDER_PRODUCTS_TABLE))


@dataclass(frozen=True)
class ReplicaProduct:
    """A product as the orders side last heard of it; `stock` is the units still free to sell."""

    product_id: int
    name: str
    price: Decimal
    currency: str
    stock: int
    deleted: bool
    version: int


async def products_by_id(pool: Pool, ids: Sequence[int]) -> dict[int, ReplicaProduct]:
    """The replica's rows of these products, deleted ones included; an id it has never heard of is
    left out. Raises psycopg.errors.UndefinedTable until the orders-products projector has run."""
    if not ids:
        return {}
    async with pool.connection() as conn:
        cursor = await conn.execute(SELECT_PRODUCTS, (list(ids),))
        rows = await cursor.fetchall()
    return {
        row["id"]: ReplicaProduct(
            product_id=row["id"],
            name=row["name"],
            price=row["price"],
            currency=row["currency"],
            stock=row["stock"],
            deleted=row["deleted"],
            version=row["version"],
        )
        for row in rows
    }
