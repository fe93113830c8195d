"""What the catalog's query routes read from: the products table, the search index, and the cached
answers of both (dropped as the projectors announce changes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from elasticsearch import AsyncElasticsearch
from fastapi import Depends, Request

from query_api.read_model_feed import ReadCache, ReadModelDatabase
from read_models.catalog import PRODUCT_SEARCH, PRODUCTS

Page = tuple[bytes, int]  # a list answer's JSON body and its total count


@dataclass(frozen=True)
class CatalogReadModels:
    database: ReadModelDatabase
    es: AsyncElasticsearch
    index: str  # the alias of the live product index
    products: ReadCache[bytes]  # product id -> its JSON
    pages: ReadCache[Page]  # list filters -> a page
    searches: ReadCache[Page]  # search filters -> a page

    @classmethod
    def create(cls, database: ReadModelDatabase, es: AsyncElasticsearch, index: str) -> CatalogReadModels:
        feed = database.feed
        return cls(
            database,
            es,
            index,
            products=feed.cache(PRODUCTS, by_key=True),
            pages=feed.cache(PRODUCTS, by_key=False),
            # A written document becomes searchable at the index's next refresh (1 s), after its notice:
            # a search answer is kept no longer than that.
            searches=feed.cache(PRODUCT_SEARCH, by_key=False, ttl=1.0),
        )


async def catalog_read_models(request: Request) -> CatalogReadModels:
    read_models: CatalogReadModels = request.app.state.catalog_read_models
    return read_models


Catalog = Annotated[CatalogReadModels, Depends(catalog_read_models)]
