"""The catalog query side's wiring: the products read model and the search index."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from elasticsearch import AsyncElasticsearch, ConnectionTimeout, NotFoundError, TransportError
from elasticsearch import ConnectionError as ElasticsearchConnectionError
from fastapi import FastAPI

from auth.tokens import load_verifier
from config.settings import Settings
from projectors.catalog.projection import ProductsProjection
from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.pool import make_pool
from projectors.runtime.postgres_runner import ensure_schema
from query_api.catalog.routes import router
from query_api.consistency import BadConsistencyToken, ProjectionBehind

log = logging.getLogger(__name__)

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    BadConsistencyToken: (422, "bad_consistency_token"),
    ProjectionBehind: (503, "projection_behind"),
    psycopg.OperationalError: (503, "database_unavailable"),
    psycopg.errors.UndefinedTable: (503, "read_model_not_ready"),
    psycopg_pool.PoolTimeout: (503, "database_unavailable"),
    ElasticsearchConnectionError: (503, "search_unavailable"),
    ConnectionTimeout: (503, "search_unavailable"),
    NotFoundError: (503, "search_index_not_ready"),
    TransportError: (503, "search_unavailable"),
}


@asynccontextmanager
async def catalog_query_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    app.state.token_verifier = load_verifier(settings)
    app.state.consistency_wait_seconds = settings.consistency_wait_seconds
    app.state.product_index = ProductSearchProjection(settings.namespace).alias
    pool = make_pool(settings.catalog_database_url)
    await pool.open(wait=False)
    app.state.catalog_pool = pool
    try:
        await ensure_schema(pool, ProductsProjection(settings.namespace))
    except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
        log.warning("catalog read model schema not checked (PostgreSQL unavailable): %s", error)
    # Short timeouts and no retries: a search while Elasticsearch is down answers 503 at once.
    async with AsyncElasticsearch(
        settings.elasticsearch_url, request_timeout=5, max_retries=0, retry_on_timeout=False
    ) as es:
        app.state.elasticsearch = es
        try:
            yield
        finally:
            await pool.close()


def install_query_side(app: FastAPI) -> None:
    app.include_router(router)
