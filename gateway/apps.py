"""Composes a service's command side and query side into one ASGI app on the seed's port. The sides
stay separate packages and can also be run apart (`python -m gateway catalog --side command`)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from auth.verification import token_verification
from config.settings import Settings
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


# Each service on the seed's port. Its modules are imported only by a process that serves it
# (`service`): a users gateway need not carry the catalog's Elasticsearch client, which alone is 35 MiB
# of every process that imports it.
PORTS = {"users": 6000, "catalog": 8000, "orders": 9000, "payments": 6002}


def load_service(name: str) -> Service:
    """The service's sides: `<name>_command_side` and friends of `command_api.<name>.app`, and of
    `query_api.<name>.app`."""
    commands = importlib.import_module(f"command_api.{name}.app")
    queries = importlib.import_module(f"query_api.{name}.app")
    return Service(
        PORTS[name],
        getattr(commands, f"{name}_command_side"),
        commands.install_command_side,
        commands.DOMAIN_ERRORS,
        getattr(queries, f"{name}_query_side"),
        queries.install_query_side,
        queries.DOMAIN_ERRORS,
    )


def service_app(name: str, settings: Settings, side: Side = "both") -> FastAPI:
    service = load_service(name)
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
    install_metrics(app, name, settings.metrics_token, settings.environment)
    app.add_middleware(CorrelationMiddleware)
    # Outermost, so everything inside sees the client's address; uvicorn's own copy is off (__main__).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
