"""The users command side's wiring: its event store, password hasher and token issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from fastapi import FastAPI

from auth.tokens import load_issuer
from command_api.service import EVENT_STORE_ERRORS, command_side, install_command_routes
from command_api.users import domain
from command_api.users.domain import USER
from command_api.users.handlers import InvalidCredentials, UsersHandlers
from command_api.users.routes import router
from config.settings import Settings
from event_schemas import topics

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    domain.EmailAlreadyRegistered: (409, "email_taken"),
    domain.UnknownUser: (404, "unknown_user"),
    InvalidCredentials: (401, "invalid_credentials"),
    **EVENT_STORE_ERRORS,
}


@asynccontextmanager
async def users_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    async with command_side(app, settings, context="users", topic=topics.USERS, kinds=[USER]) as store:
        app.state.users_handlers = UsersHandlers(
            store=store,
            hasher=PasswordHasher(),
            issuer=load_issuer(settings),
            admin_emails=frozenset(domain.normalize_email(e) for e in settings.admin_emails),
        )
        yield


def install_command_side(app: FastAPI, settings: Settings) -> None:
    install_command_routes(app, router, settings)
