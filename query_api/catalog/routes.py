"""HTTP routes of the catalog query side: the seed's product list, lookup and bulk stock."""

from __future__ import annotations

from typing import Annotated

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status

from auth.deps import CurrentUser
from projectors.catalog.projection import ProductsProjection
from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.pool import Pool
from query_api.catalog import queries
from query_api.catalog.schemas import ProductFilters, ProductPublic, StockQuery
from query_api.catalog.search import search_products
from query_api.consistency import ConsistencyToken, consistency_token, wait_for

router = APIRouter(tags=["catalog"])

Token = Annotated[ConsistencyToken | None, Depends(consistency_token)]


async def catalog_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.catalog_pool
    return pool


CatalogPool = Annotated[Pool, Depends(catalog_pool)]


async def read_your_write(
    request: Request, pool: Pool, projection: str, token: ConsistencyToken | None
) -> None:
    await wait_for(pool, projection, token, request.app.state.consistency_wait_seconds)


@router.get("/products")
async def list_products(
    request: Request,
    response: Response,
    pool: CatalogPool,
    token: Token,
    filters: Annotated[ProductFilters, Query()],
) -> list[ProductPublic]:
    """Products, one page at a time (`limit`, `offset`), optionally searched (`search`), filtered
    (`min_price`, `max_price`, `in_stock`) and sorted (`sort`); the total is in `X-Total-Count`."""
    if filters.offset + filters.limit > 10_000:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "offset + limit must not exceed 10000")
    if filters.search is None:
        await read_your_write(request, pool, ProductsProjection.name, token)
        rows, total = await queries.list_products(pool, filters)
    else:
        await read_your_write(request, pool, ProductSearchProjection.name, token)
        es: AsyncElasticsearch = request.app.state.elasticsearch
        alias: str = request.app.state.product_index
        if token is not None:
            await es.indices.refresh(index=alias)  # make what the projector wrote searchable now
        rows, total = await search_products(es, alias, filters)
    response.headers["X-Total-Count"] = str(total)
    return [ProductPublic.from_row(row) for row in rows]


@router.get("/products/{product_id}")
async def get_product(
    request: Request, product_id: Annotated[int, Path(gt=0, le=2**53)], pool: CatalogPool, token: Token
) -> ProductPublic:
    """One product by id."""
    await read_your_write(request, pool, ProductsProjection.name, token)
    row = await queries.product_by_id(pool, product_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "product not found")
    return ProductPublic.from_row(row)


@router.post("/products/stock")
async def products_stock(
    request: Request, body: StockQuery, pool: CatalogPool, token: Token, caller: CurrentUser
) -> list[ProductPublic]:
    """Current stock (and details) of the given products; unknown or deleted ids are left out."""
    await read_your_write(request, pool, ProductsProjection.name, token)
    return [ProductPublic.from_row(row) for row in await queries.products_by_ids(pool, sorted(set(body.ids)))]
