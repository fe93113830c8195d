"""The users query side as an ASGI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from fastapi import FastAPI

from auth.tokens import load_verifier
from config.settings import Settings
from projectors.runtime.pool import make_pool
from projectors.runtime.postgres_runner import ensure_schema
from projectors.users.projection import UsersProjection
from query_api.consistency import BadConsistencyToken, ProjectionBehind
from query_api.users.routes import router

log = logging.getLogger(__name__)

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    BadConsistencyToken: (422, "bad_consistency_token"),
    ProjectionBehind: (503, "projection_behind"),
    psycopg.OperationalError: (503, "database_unavailable"),
    psycopg.errors.UndefinedTable: (503, "read_model_not_ready"),
    psycopg_pool.PoolTimeout: (503, "database_unavailable"),
}


@asynccontextmanager
async def users_query_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    app.state.token_verifier = load_verifier(settings)
    app.state.consistency_wait_seconds = settings.consistency_wait_seconds
    pool = make_pool(settings.users_database_url)
    await pool.open(wait=False)
    app.state.users_pool = pool
    try:
        await ensure_schema(pool, UsersProjection(settings.namespace))
    except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
        log.warning("users read model schema not checked (PostgreSQL unavailable): %s", error)
    try:
        yield
    finally:
        await pool.close()


def install_query_side(app: FastAPI) -> None:
    app.include_router(router)
