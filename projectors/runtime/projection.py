"""The projection port: pure translation of events into SQL statements against named tables.

Table names are passed in (logical name -> physical name) so that the same projection can build a
shadow copy of its read model during a rebuild while the live one keeps serving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from psycopg import sql

from event_schemas.envelope import Event

Statement = tuple[sql.Composed, Mapping[str, Any]]
Tables = Mapping[str, str]

OFFSETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_offsets (
    projection  text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
)
"""

SHADOW_SUFFIX = "__rebuild"


class Projection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...

    @property
    def tables(self) -> Sequence[str]:
        """The logical names of the read model's tables."""
        ...

    def schema(self, tables: Tables) -> list[sql.Composed]:
        """Idempotent DDL of the read model."""
        ...

    def statements(self, event: Event, tables: Tables) -> list[Statement]:
        """The SQL that applies `event` to the read model; pure, and safe to run once per event."""
        ...


def live_tables(projection: Projection) -> dict[str, str]:
    return {table: table for table in projection.tables}


def shadow_tables(projection: Projection) -> dict[str, str]:
    return {table: f"{table}{SHADOW_SUFFIX}" for table in projection.tables}


def query(template: str, tables: Tables) -> sql.Composed:
    """`template` with `{table}` placeholders filled with the physical table names (cached, so that a
    replay composes each statement once and consecutive ones can be sent with executemany)."""
    return _compose(template, tuple(sorted(tables.items())))


@lru_cache(maxsize=512)
def _compose(template: str, tables: tuple[tuple[str, str], ...]) -> sql.Composed:
    return sql.SQL(template).format(**{name: sql.Identifier(physical) for name, physical in tables})
