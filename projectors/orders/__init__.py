"""The orders context's read models: its replica of the catalog, carts and orders (all in the orders
database)."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg.types.json import Jsonb

from projectors.runtime.projection import Row


def with_jsonb(row: Row, columns: Iterable[str]) -> Row:
    """The row as the writer sends it: psycopg adapts a list to a PostgreSQL array, so a jsonb value
    goes wrapped (in an upsert and in COPY alike). The fold itself works on the plain lists that a
    jsonb column reads back as."""
    return row | {column: Jsonb(row[column]) for column in columns}
