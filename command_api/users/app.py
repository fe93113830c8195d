"""The users command side as an ASGI app; `lifespan` wires the event store and the token issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI, Request, Response

from auth.tokens import load_issuer, load_verifier
from command_api.eventstore.errors import ConcurrencyConflict, EventStoreUnavailable, NotOwner
from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.forwarding import forward_to_owner
from command_api.ownership import ownership_router
from command_api.users import domain
from command_api.users.domain import USER
from command_api.users.handlers import InvalidCredentials, UsersHandlers
from command_api.users.routes import router
from config.settings import Settings
from event_schemas import topics
from event_schemas.registry import REGISTRY

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    domain.EmailAlreadyRegistered: (409, "email_taken"),
    domain.UnknownUser: (404, "unknown_user"),
    InvalidCredentials: (401, "invalid_credentials"),
    ConcurrencyConflict: (409, "concurrent_update"),
    EventStoreUnavailable: (503, "service_unavailable"),
}


@asynccontextmanager
async def users_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    store = KafkaEventStore(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=topics.in_namespace(settings.namespace, topics.USERS),
        group=topics.in_namespace(settings.namespace, "users-command"),
        instance_url=settings.instance_url,
        kinds=[USER],
        registry=REGISTRY,
        timeout=settings.command_timeout_seconds,
    )
    await store.start()
    app.state.event_stores = {**getattr(app.state, "event_stores", {}), "users": store}
    app.state.users_handlers = UsersHandlers(
        store=store,
        hasher=PasswordHasher(),
        issuer=load_issuer(settings),
        admin_emails=frozenset(domain.normalize_email(e) for e in settings.admin_emails),
    )
    app.state.token_verifier = load_verifier(settings)
    async with httpx.AsyncClient(timeout=settings.command_timeout_seconds * 2) as forwarding_client:
        app.state.forwarding_client = forwarding_client
        try:
            await store.wait_until_ready(within=120)
            yield
        finally:
            await store.stop()


def install_command_side(app: FastAPI, settings: Settings) -> None:
    """Routes and error handlers of the users command side, on an app that may serve other routes too."""
    app.include_router(router)
    app.include_router(ownership_router)

    async def not_owner(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotOwner)
        return await forward_to_owner(
            request, exc, request.app.state.forwarding_client, settings.instance_url
        )

    app.add_exception_handler(NotOwner, not_owner)
