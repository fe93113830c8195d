"""HTTP routes of the orders query side: the seed's cart, order list, order and checkout reads.

Each answers only the authenticated customer, whose id comes from the token, never from the
request; the one exception is the admins' list of every customer's orders (`GET /orders?scope=all`).
Pass a command's consistency token to read your own writes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from auth.deps import CurrentCustomer, current_admin
from event_schemas.orders import OrderStatus
from query_api.catch_up_on_miss import read_catching_up_on_miss
from query_api.consistency import ConsistencyToken, consistency_token, wait_for
from query_api.orders.queries import CartNotFound, OrderNotFound, all_orders, cart_of, order_of, orders_of
from query_api.orders.schemas import CartPublic, CheckoutPublic, OrderPublic, OrderScope
from query_api.read_model_feed import ReadModelDatabase
from read_models.orders import CARTS, ORDERS
from read_models.orders_replica import products_by_id
from web.errors import error_responses

router = APIRouter(tags=["orders"], responses=error_responses(401, 403, 404, 422, 503))


async def orders_read_models(request: Request) -> ReadModelDatabase:
    database: ReadModelDatabase = request.app.state.orders_read_models
    return database


OrdersReadModels = Annotated[ReadModelDatabase, Depends(orders_read_models)]
Token = Annotated[ConsistencyToken | None, Depends(consistency_token)]
OrderId = Annotated[int, Path(alias="id", gt=0, le=2**53)]


async def customers_order(
    database: ReadModelDatabase, customer_id: int, order_number: int, token: ConsistencyToken | None
) -> dict[str, Any]:
    """The order, or, if the read model has not heard of it, the order once it has caught up with
    everything committed to the log before the read (an order placed just now on another instance)."""
    return await read_catching_up_on_miss(
        lambda: order_of(database.pool, customer_id, order_number),
        database,
        ORDERS,
        token,
        missed=OrderNotFound,
    )


@router.get("/cart")
async def cart(
    claims: CurrentCustomer, database: OrdersReadModels, token: Token, request: Request
) -> CartPublic:
    """The caller's cart, with each product's current price and the units still free to sell."""
    await wait_for(database, CARTS, token, request.app.state.consistency_wait_seconds)
    row = await read_catching_up_on_miss(
        lambda: cart_of(database.pool, claims.user_id), database, CARTS, token, missed=CartNotFound
    )
    products = await products_by_id(database.pool, sorted({line["productId"] for line in row["lines"]}))
    return CartPublic.from_row(row, products)


@router.get("/orders")
async def orders(
    claims: CurrentCustomer,
    database: OrdersReadModels,
    token: Token,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    scope: OrderScope = OrderScope.own,
    status: OrderStatus | None = None,
) -> list[OrderPublic]:
    """The caller's orders, newest first, one page at a time (`limit`, `offset`), only those in one
    `status` if given; with `scope=all`, every customer's (admins only: 403 for anyone else)."""
    if scope is OrderScope.all:
        await current_admin(claims)
    await wait_for(database, ORDERS, token, request.app.state.consistency_wait_seconds)
    if scope is OrderScope.all:
        rows = await all_orders(database.pool, limit, offset, status)
    else:
        rows = await orders_of(database.pool, claims.user_id, limit, offset, status)
    return [OrderPublic.from_row(row) for row in rows]


@router.get("/order/{id}")
@router.get("/orders/{id}")
async def order(
    order_number: OrderId, claims: CurrentCustomer, database: OrdersReadModels, token: Token, request: Request
) -> OrderPublic:
    """One of the caller's orders by its number."""
    await wait_for(database, ORDERS, token, request.app.state.consistency_wait_seconds)
    return OrderPublic.from_row(await customers_order(database, claims.user_id, order_number, token))


@router.get("/orders/{orderNumber}/checkout")
async def checkout(
    order_number: Annotated[int, Path(alias="orderNumber", gt=0, le=2**53)],
    claims: CurrentCustomer,
    database: OrdersReadModels,
    token: Token,
    request: Request,
) -> CheckoutPublic:
    """What paying for one of the caller's orders needs: its amount, status and payment deadline."""
    await wait_for(database, ORDERS, token, request.app.state.consistency_wait_seconds)
    return CheckoutPublic.from_row(await customers_order(database, claims.user_id, order_number, token))
