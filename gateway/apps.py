"""Composes a service's command side and query side into one ASGI app on the seed's port. The sides
stay separate packages and can also be run apart (`python -m gateway catalog --side command`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from auth.verification import token_verification
from command_api.catalog import app as catalog_commands
from command_api.orders import app as orders_commands
from command_api.payments import app as payments_commands
from command_api.users import app as users_commands
from config.settings import Settings
from query_api.catalog import app as catalog_queries
from query_api.orders import app as orders_queries
from query_api.payments import app as payments_queries
from query_api.users import app as users_queries
from web.acknowledged_writes import CallerMiddleware
from web.body_limit import BodyLimitMiddleware
from web.errors import install_error_handlers
from web.health import health_router
from web.metrics import install_metrics
from web.routing import add_routes
from web.tracing import CorrelationMiddleware, request_telemetry

Side = Literal["both", "command", "query"]
Lifespan = Callable[[FastAPI, Settings], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Service:
    port: int
    command_side: Lifespan
    install_command_side: Callable[[FastAPI, Settings], None]
    command_errors: dict[type[Exception], tuple[int, str]]
    # A service whose read models are still to come has a command side only.
    query_side: Lifespan | None = None
    install_query_side: Callable[[FastAPI], None] | None = None
    query_errors: dict[type[Exception], tuple[int, str]] = field(default_factory=dict)


SERVICES = {
    "users": Service(
        6000,
        users_commands.users_command_side,
        users_commands.install_command_side,
        users_commands.DOMAIN_ERRORS,
        users_queries.users_query_side,
        users_queries.install_query_side,
        users_queries.DOMAIN_ERRORS,
    ),
    "catalog": Service(
        8000,
        catalog_commands.catalog_command_side,
        catalog_commands.install_command_side,
        catalog_commands.DOMAIN_ERRORS,
        catalog_queries.catalog_query_side,
        catalog_queries.install_query_side,
        catalog_queries.DOMAIN_ERRORS,
    ),
    "orders": Service(
        9000,
        orders_commands.orders_command_side,
        orders_commands.install_command_side,
        orders_commands.DOMAIN_ERRORS,
        orders_queries.orders_query_side,
        orders_queries.install_query_side,
        orders_queries.DOMAIN_ERRORS,
    ),
    "payments": Service(
        6002,
        payments_commands.payments_command_side,
        payments_commands.install_command_side,
        payments_commands.DOMAIN_ERRORS,
        payments_queries.payments_query_side,
        payments_queries.install_query_side,
        payments_queries.DOMAIN_ERRORS,
    ),
}


def service_app(name: str, settings: Settings, side: Side = "both") -> FastAPI:
    service = SERVICES[name]
    commands = side in ("both", "command")
    queries = side in ("both", "query") and service.query_side is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # One token verifier (and revocations view) per process, whichever sides it serves.
            app.state.token_verifier = await stack.enter_async_context(token_verification(settings))
            if queries and service.query_side is not None:
                await stack.enter_async_context(service.query_side(app, settings))
            if commands:
                await stack.enter_async_context(service.command_side(app, settings))
            yield

    app = FastAPI(title=name, lifespan=lifespan, telemetry=request_telemetry())
    install_error_handlers(
        app, (service.command_errors if commands else {}) | (service.query_errors if queries else {})
    )
    if commands:
        service.install_command_side(app, settings)
    if queries and service.install_query_side is not None:
        service.install_query_side(app)
    add_routes(app, health_router)
    app.add_middleware(CallerMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    install_metrics(app, settings.metrics_token, settings.environment)
    app.add_middleware(CorrelationMiddleware)
    # Outermost, so everything inside sees the client's address; uvicorn's own copy is off (__main__).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
