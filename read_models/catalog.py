"""Where the catalog's read models live."""

from __future__ import annotations

PRODUCTS = "catalog"  # the products table's projection (its offsets are kept under this name)
PRODUCTS_TABLE = "products"
PRODUCT_SEARCH = "catalog-search"  # the search index's projection


def product_index_alias(namespace: str) -> str:
    """The alias that always names the live product index (a rebuild moves it to a new index)."""
    return f"{namespace}.catalog-products".lower()
