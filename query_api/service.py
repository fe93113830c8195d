"""What every context's query side needs while its app runs: the token verifier, the consistency
wait, and a pool on its read model's database (whose schema it makes sure of, if it can)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from fastapi import FastAPI

from auth.tokens import load_verifier
from config.settings import Settings
from projectors.runtime.pool import Pool, make_pool
from projectors.runtime.postgres_runner import ensure_schema
from projectors.runtime.projection import Projection
from query_api.consistency import BadConsistencyToken, ProjectionBehind

log = logging.getLogger(__name__)

# Errors of reading a PostgreSQL read model, the same in every context.
READ_MODEL_ERRORS: dict[type[Exception], tuple[int, str]] = {
    BadConsistencyToken: (422, "bad_consistency_token"),
    ProjectionBehind: (503, "projection_behind"),
    psycopg.OperationalError: (503, "database_unavailable"),
    psycopg.errors.UndefinedTable: (503, "read_model_not_ready"),
    psycopg_pool.PoolTimeout: (503, "database_unavailable"),
}


@asynccontextmanager
async def query_side(
    app: FastAPI, settings: Settings, *, database_url: str, projection: Projection
) -> AsyncIterator[Pool]:
    app.state.token_verifier = load_verifier(settings)
    app.state.consistency_wait_seconds = settings.consistency_wait_seconds
    pool = make_pool(database_url)
    await pool.open(wait=False)  # PostgreSQL may be down: the queries answer 503 until it is back
    try:
        await ensure_schema(pool, projection)
    except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
        log.warning("%s read model schema not checked (PostgreSQL unavailable): %s", projection.name, error)
    try:
        yield pool
    finally:
        await pool.close()
