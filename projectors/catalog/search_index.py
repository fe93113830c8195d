"""The product search index: its mapping, and the pure fold of catalog events into whole documents.

Elasticsearch cannot apply a partial update under an external version, so the projector keeps whole
documents: it reads the current ones (the index is its own state), folds the batch's events into
them here, and writes each touched document once with the aggregate version as its external version.
A replayed or out-of-order event can then never overwrite newer data. Core features only: the
standard analyzer, keyword sub-fields, numeric prices in minor units (never floats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import singledispatch
from typing import Any

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
from event_schemas.money import Money

Document = dict[str, Any]

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "long"},
        "name": {
            "type": "text",
            "analyzer": "standard",
            "fields": {"keyword": {"type": "keyword", "normalizer": "lowercase", "ignore_above": 256}},
        },
        "description": {"type": "text", "analyzer": "standard"},
        "price": {"type": "keyword", "index": False},
        "price_minor": {"type": "long"},
        "currency": {"type": "keyword"},
        "stock": {"type": "integer"},
        "deleted": {"type": "boolean"},
        "version": {"type": "long"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}

SETTINGS: dict[str, Any] = {"number_of_shards": 1, "refresh_interval": "1s"}


def minor_units(money: Money) -> int:
    return int(money.amount * 100)


def price_of(document: Document) -> Decimal:
    return Decimal(document["price"])


def _with_price(document: Document, price: Money) -> Document:
    return document | {
        "price": f"{price.amount:.2f}",
        "price_minor": minor_units(price),
        "currency": price.currency,
    }


@singledispatch
def _fold(event: Event, document: Document | None) -> Document | None:
    return document


@_fold.register
def _created(event: ProductCreated, document: Document | None) -> Document | None:
    created: Document = {
        "id": event.product_id,
        "name": event.name,
        "description": event.description,
        "stock": event.stock,
        "deleted": False,
        "created_at": event.occurred_at.isoformat(),
    }
    return _with_price(created, event.price)


@_fold.register
def _updated(event: ProductUpdated, document: Document | None) -> Document | None:
    if document is None:
        return None
    changed = {
        key: value for key, value in (("name", event.name), ("description", event.description)) if value
    }
    document = document | changed
    return document if event.price is None else _with_price(document, event.price)


@_fold.register
def _deleted(event: ProductDeleted, document: Document | None) -> Document | None:
    return None if document is None else document | {"deleted": True}


@_fold.register(StockAdjusted)
@_fold.register(StockReserved)
@_fold.register(StockReleased)
def _stock_moved(
    event: StockAdjusted | StockReserved | StockReleased, document: Document | None
) -> Document | None:
    return None if document is None else document | {"stock": event.stock}


@_fold.register
def _rejected(event: StockReservationRejected, document: Document | None) -> Document | None:
    return document


def document_id(product_id: int) -> str:
    return str(product_id)


def fold_documents(current: Mapping[str, Document], events: Sequence[Event]) -> dict[str, Document]:
    """The documents the events lead to, keyed by document id, each with its new `version`. Events at
    or below a document's version were applied before and are skipped; an event for a document that
    does not exist (and does not create it) is ignored."""
    documents: dict[str, Document] = {}
    for event in events:
        if not isinstance(event, ProductEvent):
            continue
        key = document_id(event.product_id)
        document = documents.get(key, current.get(key))
        if document is not None and event.aggregate_version <= document["version"]:
            continue
        folded = _fold(event, document)
        if folded is not None:
            documents[key] = folded | {
                "version": event.aggregate_version,
                "updated_at": event.occurred_at.isoformat(),
            }
    return documents


def needs_current(events: Sequence[Event]) -> set[str]:
    """Which documents the fold must read first: those a batch changes before (or without) creating."""
    created: set[str] = set()
    needed: set[str] = set()
    for event in events:
        if not isinstance(event, ProductEvent):
            continue
        key = document_id(event.product_id)
        if isinstance(event, ProductCreated):
            created.add(key)
        elif key not in created:
            needed.add(key)
    return needed


class ProductSearchProjection:
    """The product index as a document projection (see projectors/runtime/search_runner.py)."""

    name = "catalog-search"
    mapping = MAPPING
    settings = SETTINGS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.CATALOG)
        self.alias = f"{namespace}.catalog-products".lower()

    def needs_current(self, events: Sequence[Event]) -> set[str]:
        return needs_current(events)

    def fold(self, current: Mapping[str, Document], events: Sequence[Event]) -> dict[str, Document]:
        return fold_documents(current, events)
