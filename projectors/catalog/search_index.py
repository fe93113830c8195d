"""The product search index: its mapping, and its documents, folded from events like the PostgreSQL
rows are (projectors/catalog/projection.py) and shaped for search.

Elasticsearch cannot apply a partial update under an external version, so the projector writes whole
documents: it reads the current ones (the index is its own state), folds the batch's events into
them, and writes each touched document once with the aggregate version as its external version. A
replayed or out-of-order event can then never overwrite newer data. Core features only: the standard
analyzer, keyword sub-fields, prices in integer minor units for sorting and ranges (never floats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.money import amount_text
from projectors.catalog import projection as products
from projectors.runtime.projection import Row
from read_models.catalog import PRODUCT_SEARCH, product_index_alias

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
        "reserved": {"type": "integer"},
        "deleted": {"type": "boolean"},
        "deleted_at": {"type": "date"},
        "version": {"type": "long"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}

SETTINGS: dict[str, Any] = {"number_of_shards": 1, "refresh_interval": "1s"}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def to_document(row: Row) -> Document:
    price: Decimal = row["price"]
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "price": amount_text(price),
        "price_minor": int(price * 100),
        "currency": row["currency"],
        "stock": row["stock"],
        "reserved": row["reserved"],
        "deleted": row["deleted_at"] is not None,
        "deleted_at": _iso(row["deleted_at"]),
        "version": row["version"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def to_row(document: Document) -> Row:
    def moment(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    return {
        "id": document["id"],
        "name": document["name"],
        "description": document["description"],
        "price": Decimal(document["price"]),
        "currency": document["currency"],
        "stock": document["stock"],
        # Indexed before reservations were counted, when none had been made.
        "reserved": document.get("reserved", 0),
        "version": document["version"],
        "created_at": moment(document["created_at"]),
        "updated_at": moment(document["updated_at"]),
        "deleted_at": moment(document["deleted_at"]),
    }


class ProductSearchProjection:
    """The product index as a document projection (see projectors/runtime/search_runner.py)."""

    name = PRODUCT_SEARCH
    mapping = MAPPING
    settings = SETTINGS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.CATALOG)
        self.alias = product_index_alias(namespace)

    def needs_current(self, events: Sequence[Event]) -> set[str]:
        return {str(key) for key in products.needs_current(events)}

    def fold(self, current: Mapping[str, Document], events: Sequence[Event]) -> dict[str, Document]:
        rows = products.fold({int(key): to_row(document) for key, document in current.items()}, events)
        return {str(key): to_document(row) for key, row in rows.items()}
