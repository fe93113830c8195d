"""SQL of the products read model. Deleted products are never listed or found."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from query_api.catalog.schemas import ProductFilters, ProductSort
from read_models.pool import Pool

COLUMNS = sql.SQL("id, name, description, price, currency, stock, reserved, version, created_at, updated_at")

ORDER_BY = {
    ProductSort.id: "id",
    ProductSort.relevance: "id",  # without a search there is no relevance: a stable order instead
    ProductSort.newest: "created_at DESC, id DESC",
    ProductSort.name: "lower(name), id",
    ProductSort.price_asc: "price, id",
    ProductSort.price_desc: "price DESC, id",
}


async def product_by_id(pool: Pool, product_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT {} FROM products WHERE id = %s AND deleted_at IS NULL").format(COLUMNS),
            (product_id,),
        )
        return await cursor.fetchone()


async def products_by_ids(pool: Pool, ids: list[int]) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT {} FROM products WHERE id = ANY(%s) AND deleted_at IS NULL ORDER BY id").format(
                COLUMNS
            ),
            (ids,),
        )
        return await cursor.fetchall()


async def list_products(pool: Pool, filters: ProductFilters) -> tuple[list[dict[str, Any]], int]:
    """One page in a stable order, and how many products match in all."""
    conditions = [sql.SQL("deleted_at IS NULL")]
    params: dict[str, Any] = {"limit": filters.limit, "offset": filters.offset}
    if filters.min_price is not None:
        conditions.append(sql.SQL("price >= %(min_price)s"))
        params["min_price"] = filters.min_price
    if filters.max_price is not None:
        conditions.append(sql.SQL("price <= %(max_price)s"))
        params["max_price"] = filters.max_price
    if filters.in_stock:
        conditions.append(sql.SQL("stock > 0"))
    where = sql.SQL(" AND ").join(conditions)
    order = sql.SQL(ORDER_BY[filters.sort or ProductSort.id])  # from a fixed table, never from input
    async with pool.connection() as conn:
        page = await conn.execute(
            sql.SQL("SELECT {} FROM products WHERE {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(
                COLUMNS, where, order
            ),
            params,
        )
        rows = await page.fetchall()
        counted = await conn.execute(
            sql.SQL("SELECT count(*) AS total FROM products WHERE {}").format(where), params
        )
        total = await counted.fetchone()
    return rows, 0 if total is None else int(total["total"])
