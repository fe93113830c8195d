"""The projection port: pure translation of events into SQL statements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from event_schemas.envelope import Event

Statement = tuple[str, Mapping[str, Any]]

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


class Projection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...

    @property
    def schema(self) -> Sequence[str]:
        """Idempotent DDL of the read model."""
        ...

    @property
    def tables(self) -> Sequence[str]:
        """What a reset drops."""
        ...

    def statements(self, event: Event) -> list[Statement]:
        """The SQL that applies `event` to the read model; pure, and safe to run once per event."""
        ...
