"""The orders command side's wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import psycopg
import psycopg_pool
from fastapi import FastAPI

from command_api.orders import domain
from command_api.orders.domain import CART, ORDER
from command_api.orders.handlers import OrdersHandlers
from command_api.orders.routes import router
from command_api.service import EVENT_STORE_ERRORS, command_side, install_command_routes
from config.settings import Settings
from event_schemas import topics
from event_schemas.money import AmountNotInCurrency
from read_models.log_ends import LogEnds
from read_models.pool import shared_pool

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    domain.ProductUnavailable: (404, "product_not_found"),
    domain.LineNotFound: (404, "line_not_found"),
    domain.OrderNotFound: (404, "order_not_found"),
    domain.NotEnoughStock: (409, "insufficient_stock"),
    domain.CartEmpty: (409, "cart_empty"),
    domain.CartChanged: (409, "cart_changed"),
    domain.MixedCurrencies: (409, "mixed_currencies"),
    domain.IllegalTransition: (409, "illegal_transition"),
    domain.PaymentTooLate: (409, "payment_too_late"),
    domain.PaymentMismatch: (409, "payment_mismatch"),
    AmountNotInCurrency: (409, "amount_not_in_currency"),  # an order total no payment can match
    domain.QuantityTooLarge: (422, "quantity_too_large"),
    domain.CartFull: (422, "cart_full"),
    domain.TooManyOpenOrders: (409, "too_many_open_orders"),
    domain.TooManyUnitsHeld: (409, "too_many_units_held"),
    # The replica of the catalog is a read model: while it cannot be read, commands wait for it.
    psycopg.OperationalError: (503, "database_unavailable"),
    psycopg.errors.UndefinedTable: (503, "read_model_not_ready"),
    psycopg_pool.PoolTimeout: (503, "database_unavailable"),
    **EVENT_STORE_ERRORS,
}


@asynccontextmanager
async def orders_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    stack = AsyncExitStack()
    replica = await stack.enter_async_context(
        shared_pool(settings.orders_database_url, settings.database_pool_size)
    )
    log_ends = LogEnds(settings.kafka_bootstrap_servers)
    try:
        async with command_side(
            app, settings, context="orders", topic=topics.ORDERS, kinds=[CART, ORDER]
        ) as store:
            app.state.orders_handlers = OrdersHandlers(
                store,
                replica,
                timedelta(seconds=settings.order_payment_window_seconds),
                log_ends,
                topics.in_namespace(settings.namespace, topics.CATALOG),
                limits=domain.HoldingLimits(
                    max_open_orders=settings.max_open_orders_per_customer,
                    max_held_units=settings.max_held_units_per_customer,
                ),
                replica_wait=settings.consistency_wait_seconds,
            )
            yield
    finally:
        await log_ends.stop()
        await stack.aclose()


def install_command_side(app: FastAPI, settings: Settings) -> None:
    install_command_routes(app, router, settings)
