"""The catalog query side's wiring: the products read model and the search index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch, ConnectionTimeout, NotFoundError, TransportError
from elasticsearch import ConnectionError as ElasticsearchConnectionError
from fastapi import FastAPI

from config.settings import Settings
from query_api.catalog.deps import CatalogReadModels
from query_api.catalog.routes import router
from query_api.service import READ_MODEL_ERRORS, query_side
from read_models.catalog import product_index_alias
from web.routing import add_routes

DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    **READ_MODEL_ERRORS,
    ElasticsearchConnectionError: (503, "search_unavailable"),
    ConnectionTimeout: (503, "search_unavailable"),
    NotFoundError: (503, "search_index_not_ready"),
    TransportError: (503, "search_unavailable"),
}


@asynccontextmanager
async def catalog_query_side(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    async with (
        query_side(app, settings, database_url=settings.catalog_database_url) as database,
        # Short timeouts and no retries: a search while Elasticsearch is down answers 503 at once.
        AsyncElasticsearch(
            settings.elasticsearch_url, request_timeout=5, max_retries=0, retry_on_timeout=False
        ) as es,
    ):
        app.state.catalog_read_models = CatalogReadModels.create(
            database, es, product_index_alias(settings.namespace)
        )
        yield


def install_query_side(app: FastAPI) -> None:
    add_routes(app, router)
