"""Products read model in PostgreSQL: the seed's columns plus currency, version and timestamps. A
deleted product keeps its row with `deleted_at` set, so a replay can never bring it back."""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from psycopg import sql

from event_schemas import topics
from event_schemas.catalog import (
    ProductCreated,
    ProductDeleted,
    ProductEvent,
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from event_schemas.envelope import Event
from projectors.runtime.projection import Statement, Tables, query

SCHEMA = """
CREATE TABLE IF NOT EXISTS {products} (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    price       numeric(12, 2) NOT NULL CHECK (price > 0),
    currency    char(3) NOT NULL,
    stock       integer NOT NULL CHECK (stock >= 0),
    version     integer NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz
)
"""


def _versioned(event: ProductEvent, **values: Any) -> dict[str, Any]:
    return {"id": event.product_id, "version": event.aggregate_version, "at": event.occurred_at, **values}


@singledispatch
def statements(event: Event, tables: Tables) -> list[Statement]:
    return []


@statements.register
def _created(event: ProductCreated, tables: Tables) -> list[Statement]:
    insert = query(
        "INSERT INTO {products} (id, name, description, price, currency, stock, version, created_at, updated_at) "
        "VALUES (%(id)s, %(name)s, %(description)s, %(price)s, %(currency)s, %(stock)s, %(version)s, %(at)s, %(at)s) "
        "ON CONFLICT (id) DO NOTHING",
        tables,
    )
    values = _versioned(
        event,
        name=event.name,
        description=event.description,
        price=event.price.amount,
        currency=event.price.currency,
        stock=event.stock,
    )
    return [(insert, values)]


@statements.register
def _updated(event: ProductUpdated, tables: Tables) -> list[Statement]:
    update = query(
        "UPDATE {products} SET name = COALESCE(%(name)s, name), description = COALESCE(%(description)s, description), "
        "price = COALESCE(%(price)s, price), currency = COALESCE(%(currency)s, currency), "
        "version = %(version)s, updated_at = %(at)s WHERE id = %(id)s AND version < %(version)s",
        tables,
    )
    values = _versioned(
        event,
        name=event.name,
        description=event.description,
        price=None if event.price is None else event.price.amount,
        currency=None if event.price is None else event.price.currency,
    )
    return [(update, values)]


@statements.register
def _deleted(event: ProductDeleted, tables: Tables) -> list[Statement]:
    delete = query(
        "UPDATE {products} SET deleted_at = %(at)s, version = %(version)s, updated_at = %(at)s "
        "WHERE id = %(id)s AND version < %(version)s",
        tables,
    )
    return [(delete, _versioned(event))]


@statements.register(StockAdjusted)
@statements.register(StockReserved)
@statements.register(StockReleased)
def _stock_moved(event: StockAdjusted | StockReserved | StockReleased, tables: Tables) -> list[Statement]:
    update = query(
        "UPDATE {products} SET stock = %(stock)s, version = %(version)s, updated_at = %(at)s "
        "WHERE id = %(id)s AND version < %(version)s",
        tables,
    )
    return [(update, _versioned(event, stock=event.stock))]


@statements.register
def _rejected(event: StockReservationRejected, tables: Tables) -> list[Statement]:
    # Nothing visible changes, but the row's version keeps step with the aggregate's.
    touch = query(
        "UPDATE {products} SET version = %(version)s WHERE id = %(id)s AND version < %(version)s", tables
    )
    return [(touch, _versioned(event))]


class ProductsProjection:
    name = "catalog"
    tables = ("products",)

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.CATALOG)

    def schema(self, tables: Tables) -> list[sql.Composed]:
        return [query(SCHEMA, tables)]

    def statements(self, event: Event, tables: Tables) -> list[Statement]:
        return statements(event, tables)
