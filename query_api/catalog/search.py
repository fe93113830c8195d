"""Full-text product search in Elasticsearch: name and description, typo-tolerant, with filters."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch

from query_api.catalog.schemas import ProductFilters, ProductPublic, ProductSort

SORTS: dict[ProductSort, list[dict[str, Any]]] = {
    ProductSort.relevance: [{"_score": "desc"}, {"id": "asc"}],
    ProductSort.id: [{"id": "asc"}],
    ProductSort.newest: [{"created_at": "desc"}, {"id": "desc"}],
    ProductSort.name: [{"name.keyword": "asc"}, {"id": "asc"}],
    ProductSort.price_asc: [{"price_minor": "asc"}, {"id": "asc"}],
    ProductSort.price_desc: [{"price_minor": "desc"}, {"id": "asc"}],
}


def search_body(filters: ProductFilters) -> dict[str, Any]:
    """The query: every word of `search` in the name (weighted) or the description, each within the
    edit distance Elasticsearch allows for its length, so a typo still finds the product."""
    assert filters.search is not None
    conditions: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    price: dict[str, int] = {}
    if filters.min_price is not None:
        price["gte"] = int(filters.min_price * 100)
    if filters.max_price is not None:
        price["lte"] = int(filters.max_price * 100)
    if price:
        conditions.append({"range": {"price_minor": price}})
    if filters.in_stock:
        conditions.append({"range": {"stock": {"gt": 0}}})
    return {
        "query": {
            "bool": {
                "must": {
                    "multi_match": {
                        "query": filters.search,
                        "fields": ["name^3", "description"],
                        "fuzziness": "AUTO",
                        "operator": "and",
                    }
                },
                "filter": conditions,
            }
        },
        "sort": SORTS[filters.sort or ProductSort.relevance],
        "from": filters.offset,
        "size": filters.limit,
        "track_total_hits": True,
    }


async def search_products(
    es: AsyncElasticsearch, alias: str, filters: ProductFilters
) -> tuple[list[ProductPublic], int]:
    """A page of matching products (read straight from the indexed documents) and the total."""
    response = await es.search(index=alias, body=search_body(filters))
    hits = response["hits"]
    return [ProductPublic.model_validate(hit["_source"]) for hit in hits["hits"]], int(hits["total"]["value"])
