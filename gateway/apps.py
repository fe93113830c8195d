"""Composes a service's command side and query side into one ASGI app (the packages stay separate and
can also be run apart: `python -m gateway users --side command`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Literal

from fastapi import FastAPI

from command_api.users import app as users_commands
from config.settings import Settings
from query_api.users import app as users_queries
from web.errors import install_error_handlers
from web.health import health_router

Side = Literal["both", "command", "query"]

SEED_PORTS = {"users": 6000, "catalog": 8000, "orders": 9000, "payments": 6002}


def users_app(settings: Settings, side: Side = "both") -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if side in ("both", "query"):
                await stack.enter_async_context(users_queries.users_query_side(app, settings))
            if side in ("both", "command"):
                await stack.enter_async_context(users_commands.users_command_side(app, settings))
            yield

    app = FastAPI(title="users", lifespan=lifespan)
    install_error_handlers(app, users_commands.DOMAIN_ERRORS | users_queries.DOMAIN_ERRORS)
    if side in ("both", "command"):
        users_commands.install_command_side(app, settings)
    if side in ("both", "query"):
        users_queries.install_query_side(app)
    app.include_router(health_router)
    return app
