"""The payments query side's wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from config.settings import Settings
from query_api.payments.queries import PaymentNotFound
from query_api.payments.routes import router
from query_api.service import READ_MODEL_ERRORS, query_side
from web.routing import add_routes

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    **READ_MODEL_ERRORS,
    PaymentNotFound: (404, "payment_not_found"),
}


@asynccontextmanager
async def payments_query_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    async with query_side(app, settings, database_url=settings.payments_database_url) as database:
        app.state.payments_read_models = database
        yield


def install_query_side(app: FastAPI) -> None:
    add_routes(app, router)
