"""The users command side's wiring: its event store, password hashing, the limits on callers (their
counters in the users database) and the token issuer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from fastapi import FastAPI

from auth.tokens import load_issuer
from command_api.rate_limits.counters import AttemptCounters, CountersUnavailable
from command_api.service import EVENT_STORE_ERRORS, command_side, install_command_routes
from command_api.users import domain
from command_api.users.domain import USER
from command_api.users.handlers import InvalidCredentials, UsersHandlers
from command_api.users.limits import AuthAttempts, AuthLimits, TooManyAttempts
from command_api.users.password_hashing import HashingBusy, PasswordHashing
from command_api.users.routes import router
from config.settings import Settings
from event_schemas import topics
from read_models.pool import shared_pool

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    domain.EmailAlreadyRegistered: (409, "email_taken"),
    domain.UnknownUser: (404, "unknown_user"),
    InvalidCredentials: (401, "invalid_credentials"),
    TooManyAttempts: (429, "too_many_requests"),
    CountersUnavailable: (503, "database_unavailable"),
    HashingBusy: (503, "server_busy"),
    **EVENT_STORE_ERRORS,
}

# How often each instance deletes the counters whose window has closed.
_SWEEP_SECONDS = 60.0


@asynccontextmanager
async def users_command_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    # Shared with the query side when both run in this process. It opens lazily: PostgreSQL may be down,
    # and login and registration answer 503 until it is back.
    stack = contextlib.AsyncExitStack()
    pool = await stack.enter_async_context(
        shared_pool(settings.users_database_url, settings.database_pool_size)
    )
    counters = AttemptCounters(pool, timeout=settings.rate_limit_timeout_seconds)
    sweeping = asyncio.create_task(counters.sweep_forever(_SWEEP_SECONDS), name="attempt-counters-sweep")
    hashing = PasswordHashing(
        PasswordHasher(
            time_cost=settings.password_hash_iterations,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_lanes,
        ),
        concurrency=settings.password_hashing_concurrency,
        wait_seconds=settings.password_hashing_wait_seconds,
    )
    try:
        async with command_side(app, settings, context="users", topic=topics.USERS, kinds=[USER]) as store:
            app.state.users_handlers = UsersHandlers(
                store=store,
                hashing=hashing,
                attempts=AuthAttempts(counters, AuthLimits.from_settings(settings)),
                issuer=load_issuer(settings),
            )
            yield
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
        hashing.close()
        await stack.aclose()


def install_command_side(app: FastAPI, settings: Settings) -> None:
    install_command_routes(app, router, settings)
