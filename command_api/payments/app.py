"""The payments command side's wiring: the gateway (Stripe when a secret key is set, else the
simulated one), the replica of the orders, and the event store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from fastapi import FastAPI

from command_api.payments import domain, gateway
from command_api.payments.domain import PAYMENT
from command_api.payments.handlers import OrderNotFound, PaymentsHandlers
from command_api.payments.routes import router
from command_api.payments.simulated_gateway import SimulatedGateway, UnknownTestCard
from command_api.payments.stripe_gateway import BadWebhook, StripeGateway
from command_api.service import EVENT_STORE_ERRORS, command_side, install_command_routes
from config.settings import Settings
from event_schemas import topics
from read_models.log_ends import LogEnds
from read_models.pool import Pool, make_pool

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    OrderNotFound: (404, "order_not_found"),
    gateway.IntentNotFound: (404, "payment_not_found"),
    domain.PaymentNotFound: (404, "payment_not_found"),
    domain.OrderNotPayable: (409, "order_not_payable"),
    domain.IntentMismatch: (409, "intent_mismatch"),
    domain.RefundNotAllowed: (409, "refund_not_allowed"),
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
    if settings.stripe_secret_key:
        return StripeGateway(
            settings.stripe_secret_key,
            settings.stripe_publishable_key,
            api_base=settings.stripe_api_base or None,
        )
    return SimulatedGateway(database)


@asynccontextmanager
async def payments_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    app.state.stripe_webhook_secret = settings.stripe_webhook_secret
    database = make_pool(settings.payments_database_url)
    await database.open(wait=False)
    log_ends = LogEnds(settings.kafka_bootstrap_servers)
    try:
        async with command_side(
            app, settings, context="payments", topic=topics.PAYMENTS, kinds=[PAYMENT]
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
        await database.close()


def install_command_side(app: FastAPI, settings: Settings) -> None:
    install_command_routes(app, router, settings)
