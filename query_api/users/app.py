"""The users query side's wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from config.settings import Settings
from query_api.service import READ_MODEL_ERRORS, query_side
from query_api.users.routes import router
from web.routing import add_routes

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = READ_MODEL_ERRORS


@asynccontextmanager
async def users_query_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    async with query_side(app, settings, database_url=settings.users_database_url) as database:
        app.state.users_read_models = database
        yield


def install_query_side(app: FastAPI) -> None:
    add_routes(app, router)
