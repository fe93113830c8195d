"""What every context's query side needs while its app runs: the consistency wait, a pool on its
read models' database and the feed of their changes (the token verifier is the app's: gateway/apps.py).
The schema is the projectors' business: until a projector has created its tables, queries answer 503."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from fastapi import FastAPI

from config.settings import Settings
from query_api.consistency import BadConsistencyToken, ProjectionBehind
from query_api.read_model_feed import ReadModelDatabase, ReadModelFeed
from read_models.log_ends import LogEnds
from read_models.pool import shared_pool

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
    app: FastAPI, settings: Settings, *, database_url: str
) -> AsyncIterator[ReadModelDatabase]:
    app.state.consistency_wait_seconds = settings.consistency_wait_seconds
    feed = ReadModelFeed(database_url)
    following = asyncio.create_task(feed.follow(), name="read-model-feed")
    # Opened lazily (PostgreSQL may be down: the queries answer 503 until it is back), and shared with the
    # command side when both run in this process.
    stack = contextlib.AsyncExitStack()
    pool = await stack.enter_async_context(shared_pool(database_url, settings.database_pool_size))
    log_ends = LogEnds(settings.kafka_bootstrap_servers)
    try:
        yield ReadModelDatabase(
            pool,
            feed,
            settings.namespace,
            log_ends,
            own_writes_wait=settings.own_writes_wait_seconds,
            miss_wait=settings.consistency_wait_seconds,
        )
    finally:
        await log_ends.stop()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await stack.aclose()
