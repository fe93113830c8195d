"""HTTP routes of the catalog query side: the seed's product list, lookup and bulk stock.

Answers are rendered once and kept (query_api/read_model_feed.py) until the projectors announce that
their rows changed; a query that carries a consistency token waits for it and reads afresh.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import TypeAdapter

from auth.deps import CurrentUser
from query_api.catalog import queries
from query_api.catalog.deps import Catalog, Page
from query_api.catalog.schemas import ProductFilters, ProductPublic, StockQuery
from query_api.catalog.search import search_products
from query_api.catch_up_on_miss import read_catching_up_on_miss
from query_api.consistency import ConsistencyToken, consistency_token, wait_for
from read_models.catalog import PRODUCT_SEARCH, PRODUCTS
from web.errors import error_responses

router = APIRouter(tags=["catalog"], responses=error_responses(401, 404, 413, 422, 503))

Token = Annotated[ConsistencyToken | None, Depends(consistency_token)]
PRODUCT_JSON = TypeAdapter(ProductPublic)
PRODUCTS_JSON = TypeAdapter(list[ProductPublic])


def json_answer(body: bytes, total: int | None = None) -> Response:
    headers = None if total is None else {"X-Total-Count": str(total)}
    return Response(body, media_type="application/json", headers=headers)


@router.get("/products", response_model=list[ProductPublic])
async def list_products(
    request: Request, catalog: Catalog, token: Token, filters: Annotated[ProductFilters, Query()]
) -> Response:
    """Products, one page at a time (`limit`, `offset`), optionally searched (`search`), filtered
    (`min_price`, `max_price`, `in_stock`) and sorted (`sort`); the total is in `X-Total-Count`."""
    if filters.offset + filters.limit > 10_000:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "offset + limit must not exceed 10000")
    wait = request.app.state.consistency_wait_seconds
    key = filters.model_dump_json()

    async def page() -> Page:
        rows, total = await queries.list_products(catalog.database.pool, filters)
        return PRODUCTS_JSON.dump_json([ProductPublic.from_row(row) for row in rows]), total

    async def found() -> Page:
        if token is not None:  # make what the projector wrote searchable now
            await catalog.es.indices.refresh(index=catalog.index)
        hits, total = await search_products(catalog.es, catalog.index, filters)
        return PRODUCTS_JSON.dump_json(hits), total

    if filters.search is None:
        await wait_for(catalog.database, PRODUCTS, token, wait)
        body, total = await catalog.pages.through(key, page, fresh=token is not None)
    else:
        await wait_for(catalog.database, PRODUCT_SEARCH, token, wait)
        body, total = await catalog.searches.through(key, found, fresh=token is not None)
    return json_answer(body, total)


@router.get("/products/{product_id:int}", response_model=ProductPublic)
async def get_product(
    request: Request, product_id: Annotated[int, Path(gt=0, le=2**53)], catalog: Catalog, token: Token
) -> Response:
    """One product by id."""
    await wait_for(catalog.database, PRODUCTS, token, request.app.state.consistency_wait_seconds)

    async def product() -> bytes:
        row = await read_catching_up_on_miss(
            lambda: queries.product_by_id(catalog.database.pool, product_id),
            catalog.database,
            PRODUCTS,
            token,
            missed=lambda row: row is None,  # created just now?
        )
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "product not found")
        return PRODUCT_JSON.dump_json(ProductPublic.from_row(row))

    return json_answer(await catalog.products.through(product_id, product, fresh=token is not None))


@router.post("/products/stock")
async def products_stock(
    request: Request, body: StockQuery, catalog: Catalog, token: Token, caller: CurrentUser
) -> list[ProductPublic]:
    """Current stock (and details) of the given products; unknown or deleted ids are left out."""
    await wait_for(catalog.database, PRODUCTS, token, request.app.state.consistency_wait_seconds)
    ids = sorted(set(body.ids))
    rows = await read_catching_up_on_miss(
        lambda: queries.products_by_ids(catalog.database.pool, ids),
        catalog.database,
        PRODUCTS,
        token,
        missed=lambda rows: len(rows) < len(ids),  # some created just now?
    )
    return [ProductPublic.from_row(row) for row in rows]
