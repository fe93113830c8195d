"""Read-your-writes. A query that carries a command's consistency token waits (boundedly) until the
projection has applied the event at that position. A query without one waits, for at most
`COMMERCE_OWN_WRITES_WAIT_SECONDS` (2 s), until the projection has applied every write this process
acknowledged to the same caller before the query began (a client that reads from the instance it
wrote to sees its own writes, as the seed's clients expect); past that it answers from the read model
as it is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import psycopg
from aiokafka.errors import KafkaError
from fastapi import Header, Query

from query_api.read_model_feed import ReadModelDatabase
from read_models.pool import Pool
from web.acknowledged_writes import ACKNOWLEDGED_WRITES, CALLER


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


async def wait_for(
    database: ReadModelDatabase, projection: str, token: ConsistencyToken | None, within: float
) -> None:
    """Return once the projection has applied the token's event (or, without a token, this process's
    own acknowledged writes)."""
    if token is not None:
        await _check_names_the_read_model(database, projection, token)
        await _wait_for_position(database, projection, token, within)
        return
    if not database.own_writes_wait:
        return
    topic = database.topic_of(projection)
    for partition, offset in list(ACKNOWLEDGED_WRITES.last_offsets(CALLER.get(), topic).items()):
        if database.feed.reached(projection, topic, partition, offset):
            continue
        try:
            await _wait_for_position(
                database, projection, ConsistencyToken(topic, partition, offset), database.own_writes_wait
            )
        except ProjectionBehind:
            return  # the projector is slow or down: answer what the read model has


async def _check_names_the_read_model(
    database: ReadModelDatabase, projection: str, token: ConsistencyToken
) -> None:
    """A token for another topic, or for a partition its topic does not have, would hold the read
    for the whole wait and then fail: refuse it at once (422)."""
    topic = database.topic_of(projection)
    if token.topic != topic:
        raise BadConsistencyToken(
            f"this consistency token is for {token.topic}; this read comes from {topic}"
        )
    if database.log_ends is None:
        return
    try:
        partitions = await database.log_ends.partition_count(topic)
    except (KafkaError, OSError, TimeoutError):
        return  # Kafka cannot say: the wait itself decides
    if token.partition >= partitions:
        raise BadConsistencyToken(f"{topic} has no partition {token.partition} (it has {partitions})")


async def _wait_for_position(
    database: ReadModelDatabase, projection: str, token: ConsistencyToken, within: float
) -> None:
    """Known at once from the change notices, else (notices missed, or none yet) from the offsets
    table, polled now and then."""
    feed = database.feed
    deadline = time.monotonic() + within
    delay, polled_at = 0.005, -1.0
    while True:
        seen = feed.notices
        if feed.reached(projection, token.topic, token.partition, token.offset):
            return
        now = time.monotonic()
        if now - polled_at >= (0.1 if feed.listening else delay):
            polled_at = now
            if await _stored_offset(database.pool, projection, token) > token.offset:
                return
        if now >= deadline:
            raise ProjectionBehind(
                f"the {projection} read model has not reached {token.topic}:{token.partition}:{token.offset} "
                f"after {within:.0f}s; retry shortly"
            )
        await feed.next_notice(seen, min(delay, deadline - now))
        delay = min(delay * 2, 0.1)


async def _stored_offset(pool: Pool, projection: str, token: ConsistencyToken) -> int:
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT next_offset FROM projection_offsets WHERE projection = %s AND topic = %s AND partition = %s",
                (projection, token.topic, token.partition),
            )
            row = await cursor.fetchone()
    except psycopg.errors.UndefinedTable:
        return 0  # the projector has not created its tables yet
    return 0 if row is None else int(row["next_offset"])
