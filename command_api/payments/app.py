"""The payments command side's wiring: the gateway (Settings.chosen_payment_gateway: Stripe, or the
simulated one in local mode only), the replica of the orders, and the event store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import psycopg
import psycopg_pool
from fastapi import FastAPI

from command_api.payments import domain, gateway
from command_api.payments.domain import PAYMENT, PAYMENT_REQUEST
from command_api.payments.handlers import OrderNotFound, PaymentsHandlers
from command_api.payments.routes import router, simulated_gateway_router
from command_api.payments.simulated_gateway import SimulatedGateway, UnknownTestCard
from command_api.payments.stripe_gateway import BadWebhook, StripeGateway
from command_api.service import EVENT_STORE_ERRORS, command_side, install_command_routes
from config.settings import Settings
from event_schemas import topics
from event_schemas.money import AmountNotInCurrency
from read_models.log_ends import LogEnds
from read_models.pool import Pool, shared_pool
from web.routing import add_routes

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    OrderNotFound: (404, "order_not_found"),
    gateway.IntentNotFound: (404, "payment_not_found"),
    domain.PaymentNotFound: (404, "payment_not_found"),
    domain.OrderNotPayable: (409, "order_not_payable"),
    domain.IntentMismatch: (409, "intent_mismatch"),
    domain.RefundNotAllowed: (409, "refund_not_allowed"),
    AmountNotInCurrency: (409, "amount_not_in_currency"),  # an order total no gateway can charge
    UnknownTestCard: (422, "unknown_test_card"),
    BadWebhook: (400, "bad_webhook"),
    gateway.GatewayUnavailable: (503, "gateway_unavailable"),
    gateway.GatewayError: (502, "gateway_error"),
    psycopg.OperationalError: (503, "database_unavailable"),
    psycopg.errors.UndefinedTable: (503, "read_model_not_ready"),
    psycopg_pool.PoolTimeout: (503, "database_unavailable"),
    **EVENT_STORE_ERRORS,
}


def payment_gateway(settings: Settings, database: Pool) -> gateway.PaymentGateway:
    if settings.chosen_payment_gateway() == "stripe":
        return StripeGateway(
            settings.stripe_secret_key,
            settings.stripe_publishable_key,
            api_base=settings.stripe_api_base or None,
        )
    return SimulatedGateway(database)


@asynccontextmanager
async def payments_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    app.state.stripe_webhook_secret = settings.stripe_webhook_secret
    stack = AsyncExitStack()
    database = await stack.enter_async_context(
        shared_pool(settings.payments_database_url, settings.database_pool_size)
    )
    log_ends = LogEnds(settings.kafka_bootstrap_servers)
    try:
        async with command_side(
            app, settings, context="payments", topic=topics.PAYMENTS, kinds=[PAYMENT, PAYMENT_REQUEST]
        ) as store:
            app.state.payments_handlers = PaymentsHandlers(
                store,
                payment_gateway(settings, database),
                database,
                log_ends,
                topics.in_namespace(settings.namespace, topics.ORDERS),
                topics.in_namespace(settings.namespace, topics.PAYMENTS),
                settings.namespace,
                replica_wait=settings.consistency_wait_seconds,
            )
            yield
    finally:
        await log_ends.stop()
        await stack.aclose()


def install_command_side(app: FastAPI, settings: Settings) -> None:
    """The routes, once the gateway is known to be usable: a payments service that may not run its gateway
    (production without a Stripe key) fails here, before it listens. The simulated gateway's routes
    exist only where it runs."""
    chosen = settings.chosen_payment_gateway()
    install_command_routes(app, router, settings)
    if chosen == "simulated":
        add_routes(app, simulated_gateway_router)
