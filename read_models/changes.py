"""Change notices: how a projector tells the query sides what it has just committed.

A projector sends a notice with PostgreSQL's NOTIFY inside the transaction that writes the rows and
the offset, so a listener hears it when, and only if, that transaction commits, and in commit order.
The query sides use notices to drop cached answers and to know how far a projection has got without
polling (see query_api/read_model_feed.py). A notice is a hint that can be lost (a listener that
reconnects has missed some), so listeners drop everything they cached when they (re)connect.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection

CHANNEL = "read_model_changes"
# NOTIFY payloads are limited to 8,000 bytes: past this many keys a notice says "anything may have changed".
MAX_KEYS = 400


@dataclass(frozen=True)
class ChangeNotice:
    projection: str
    topic: str | None = None
    partition: int | None = None
    next_offset: int | None = None  # the partition's stored offset once this commits
    keys: tuple[Hashable, ...] | None = None  # the rows changed; None: any row may have changed
    reset: bool = False  # the read model was dropped: its offsets start again from 0

    @classmethod
    def of_batch(
        cls, projection: str, topic: str, partition: int, next_offset: int, keys: Collection[Hashable]
    ) -> ChangeNotice:
        return cls(projection, topic, partition, next_offset, tuple(keys) if len(keys) <= MAX_KEYS else None)

    def to_payload(self) -> str:
        return orjson.dumps(
            {
                "projection": self.projection,
                "topic": self.topic,
                "partition": self.partition,
                "next_offset": self.next_offset,
                "keys": self.keys,
                "reset": self.reset,
            }
        ).decode()

    @classmethod
    def from_payload(cls, payload: str) -> ChangeNotice:
        fields = orjson.loads(payload)
        keys = fields["keys"]
        return cls(
            projection=fields["projection"],
            topic=fields["topic"],
            partition=fields["partition"],
            next_offset=fields["next_offset"],
            keys=None if keys is None else tuple(keys),
            reset=fields["reset"],
        )


async def announce(conn: AsyncConnection[Any], notice: ChangeNotice) -> None:
    """Send `notice` when the caller's transaction commits (at once on an autocommit connection)."""
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice.to_payload()))
