"""Read-your-writes: a query that carries a command's consistency token waits (boundedly) until the
projection has applied the event at that position."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Query

from projectors.runtime.pool import Pool


class ProjectionBehind(Exception):
    """The read model has not reached the requested position within the wait."""


class BadConsistencyToken(ValueError):
    pass


@dataclass(frozen=True)
class ConsistencyToken:
    topic: str
    partition: int
    offset: int

    @classmethod
    def parse(cls, token: str) -> ConsistencyToken:
        parts = token.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise BadConsistencyToken(
                f"malformed consistency token {token!r}; expected topic:partition:offset"
            )
        return cls(parts[0], int(parts[1]), int(parts[2]))


async def consistency_token(
    header: Annotated[str | None, Header(alias="X-Consistency-Token")] = None,
    query: Annotated[str | None, Query(alias="consistency_token")] = None,
) -> ConsistencyToken | None:
    raw = header or query
    return None if raw is None else ConsistencyToken.parse(raw)


async def wait_for(pool: Pool, projection: str, token: ConsistencyToken | None, within: float) -> None:
    if token is None:
        return
    deadline = time.monotonic() + within
    delay = 0.005
    while True:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT next_offset FROM projection_offsets WHERE projection = %s AND topic = %s AND partition = %s",
                (projection, token.topic, token.partition),
            )
            row = await cursor.fetchone()
        if row is not None and row["next_offset"] > token.offset:
            return
        if time.monotonic() >= deadline:
            raise ProjectionBehind(
                f"the {projection} read model has not reached {token.topic}:{token.partition}:{token.offset} "
                f"after {within:.0f}s; retry shortly"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
