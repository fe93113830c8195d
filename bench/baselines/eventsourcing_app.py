"""The usual Python design, as a baseline for the catalog's command side: the `eventsourcing` library's
Application and Aggregate on PostgreSQL, served by FastAPI with plain `def` routes (run in its
threadpool), each request doing load -> decide -> save.

    python -m bench.baselines.eventsourcing_app --port 8901 \
        --database-url postgresql://postgres@127.0.0.1:5432/DBNAME

It takes the same request bodies as our catalog (`CreateProduct`, `AdjustStock`) and answers the same
product JSON (ids are the library's UUIDs), without authentication. Its tables are created on start;
`eventsourcing_database()` gives it a throwaway database.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import uvicorn
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from fastapi import Depends, FastAPI, Request, status
from psycopg.conninfo import conninfo_to_dict

from bench.baselines.databases import throwaway_database
from command_api.catalog.commands import AdjustStock, CreateProduct
from event_schemas.money import amount_text
from web.errors import install_error_handlers

# A save that loses a race with another request for the same product (the library's optimistic
# concurrency check) is retried from the load, so that concurrent clients see their commands applied
# rather than conflicts, as our event store's per-partition writer gives them. More attempts than
# the threadpool has threads (40): even with every thread on one product, each gets its turn.
SAVE_ATTEMPTS = 50


class ProductNotFound(Exception):
    pass


class InsufficientStock(Exception):
    pass


class ConcurrentUpdate(Exception):
    pass


class Product(Aggregate):
    @event("Created")
    def __init__(self, name: str, description: str, price: Decimal, currency: str, stock: int) -> None:
        self.name = name
        self.description = description
        self.price = price
        self.currency = currency
        self.stock = stock

    def adjust_stock(self, delta: int, reason: str) -> None:
        """Decide, then record: stock never goes below zero."""
        if self.stock + delta < 0:
            raise InsufficientStock(f"only {self.stock} in stock; cannot remove {-delta}")
        self._stock_adjusted(delta, reason)

    @event("StockAdjusted")
    def _stock_adjusted(self, delta: int, reason: str) -> None:
        self.stock += delta


class Catalog(Application[UUID]):
    def create_product(self, command: CreateProduct) -> Product:
        product = Product(command.name, command.description, command.price, command.currency, command.stock)
        self.save(product)
        return product

    def adjust_stock(self, product_id: UUID, command: AdjustStock) -> Product:
        for _ in range(SAVE_ATTEMPTS):
            try:
                product: Product = self.repository.get(product_id)
            except AggregateNotFoundError:
                raise ProductNotFound(f"product {product_id} not found") from None
            product.adjust_stock(command.delta, command.reason)
            try:
                self.save(product)
            except IntegrityError:
                continue
            return product
        raise ConcurrentUpdate(f"product {product_id} changed under {SAVE_ATTEMPTS} attempts; retry")


# The library's aggregate cache, on, as its users would run it against ours (which keeps its aggregates
# in memory): an LRU of this many aggregates, each brought up to date from the database on a hit (the
# library's fast-forward), so concurrent requests still see each other's writes.
AGGREGATE_CACHE_SIZE = 20_000


def persistence_env(database_url: str) -> dict[str, str]:
    """The library's configuration (environment keys) for a PostgreSQL URL; tables created on start."""
    params = conninfo_to_dict(database_url)
    return {
        "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZE),
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params["dbname"]),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or 5432),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "CREATE_TABLE": "y",
    }


def product_public(product: Product) -> dict[str, Any]:
    return {
        "id": str(product.id),
        "name": product.name,
        "description": product.description,
        "price": amount_text(product.price),
        "currency": product.currency,
        "stock": product.stock,
        "version": product.version,
    }


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def create_app(database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.catalog = Catalog(env=persistence_env(database_url))
        try:
            yield
        finally:
            app.state.catalog.close()

    app = FastAPI(title="eventsourcing baseline", lifespan=lifespan)
    install_error_handlers(
        app,
        {
            ProductNotFound: (404, "product_not_found"),
            InsufficientStock: (409, "insufficient_stock"),
            ConcurrentUpdate: (409, "concurrent_update"),
        },
    )

    @app.post("/products", status_code=status.HTTP_201_CREATED)
    def create_product(command: CreateProduct, catalog: CatalogDep) -> dict[str, Any]:
        """Add a product."""
        return product_public(catalog.create_product(command))

    @app.post("/products/{product_id}/stock-adjustments")
    def adjust_stock(product_id: UUID, command: AdjustStock, catalog: CatalogDep) -> dict[str, Any]:
        """Restock or write off units; stock never goes below zero."""
        return product_public(catalog.adjust_stock(product_id, command))

    return app


@contextmanager
def eventsourcing_database(admin_url: str) -> Iterator[str]:
    """A fresh database for this app (its URL, for `--database-url`), dropped on exit."""
    with throwaway_database(admin_url, "bench_eventsourcing") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.eventsourcing_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(create_app(args.database_url), host="127.0.0.1", port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    # Run the module's own import, not `__main__`: the library stores each event's class by its
    # module path, which must read the same however the app is started.
    from bench.baselines.eventsourcing_app import main as imported_main

    imported_main()
