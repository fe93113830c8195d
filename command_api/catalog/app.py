"""The catalog command side's wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT
from command_api.catalog.handlers import CatalogHandlers
from command_api.catalog.routes import router
from command_api.service import EVENT_STORE_ERRORS, command_side, install_command_routes
from config.settings import Settings
from event_schemas import topics

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    domain.ProductNotFound: (404, "product_not_found"),
    domain.InsufficientStock: (409, "insufficient_stock"),
    domain.PriceNotInCurrency: (422, "amount_not_in_currency"),
    **EVENT_STORE_ERRORS,
}


@asynccontextmanager
async def catalog_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    async with command_side(app, settings, context="catalog", topic=topics.CATALOG, kinds=[PRODUCT]) as store:
        app.state.catalog_handlers = CatalogHandlers(store)
        yield


def install_command_side(app: FastAPI, settings: Settings) -> None:
    install_command_routes(app, router, settings)
