"""Attempt counters in PostgreSQL, which every instance of a service shares: one atomic upsert counts an
attempt against all its keys and returns their counts. The counters are not facts of the domain (they
are not in Kafka, and losing them only forgets recent attempts), so the table is UNLOGGED and rows are
deleted once their window has closed. Keys are stored as digests: the table holds no emails or addresses.

Driver errors become `CountersUnavailable` here, and every operation gives up after `timeout` seconds,
whatever PostgreSQL does (down, unreachable, frozen): the caller answers 503, never hangs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import psycopg_pool

from command_api.rate_limits.windows import Count, Limit, Verdict, judge, strictest
from read_models.pool import Pool

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE UNLOGGED TABLE IF NOT EXISTS attempt_counters (
    key           bytea       PRIMARY KEY,
    hits          integer     NOT NULL,
    window_closes timestamptz NOT NULL
)
"""

# A closed window starts again at one; an open one counts on (SET sees the row as it was).
_COUNT_ATTEMPT = """
INSERT INTO attempt_counters AS counter (key, hits, window_closes)
SELECT key, 1, window_closes
FROM unnest(%(keys)s::bytea[], %(window_closes)s::timestamptz[]) AS attempt (key, window_closes)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN counter.window_closes <= %(now)s THEN 1 ELSE counter.hits + 1 END,
    window_closes = CASE
        WHEN counter.window_closes <= %(now)s THEN EXCLUDED.window_closes ELSE counter.window_closes
    END
RETURNING key, hits, window_closes
"""


class CountersUnavailable(Exception):
    """The counters could not be read in time, so the limit cannot be checked (a 503, never a pass)."""


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class AttemptCounters:
    def __init__(self, pool: Pool, *, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._schema_ready = False

    async def attempt(
        self, limits: Mapping[str, Limit], now: datetime, look_at: Mapping[str, Limit] | None = None
    ) -> Verdict:
        """Count one attempt against each key of `limits`, and judge it by that key's limit; the keys of
        `look_at` are judged as if the attempt were counted, but not counted (in the same round trip)."""
        # Rows are locked in one order by every statement, so two attempts never deadlock.
        keys = sorted(((digest(key), limit) for key, limit in limits.items()), key=lambda pair: pair[0])
        looked_at = [(digest(key), limit) for key, limit in (look_at or {}).items()]
        parameters = {
            "keys": [key for key, _ in keys],
            "window_closes": [limit.window_opened(now) for _, limit in keys],
            "now": now,
        }

        async def count() -> tuple[dict[bytes, Count], dict[bytes, Count]]:
            async with self._pool.connection() as conn:
                await self._ensure_schema(conn)
                cursor = await conn.execute(_COUNT_ATTEMPT, parameters)
                counted = await cursor.fetchall()
                seen: list[Any] = []
                if looked_at:
                    cursor = await conn.execute(
                        "SELECT key, hits, window_closes FROM attempt_counters"
                        " WHERE key = ANY(%s) AND window_closes > %s",
                        ([key for key, _ in looked_at], now),
                    )
                    seen = await cursor.fetchall()
            return (
                {bytes(row["key"]): Count(row["hits"], row["window_closes"]) for row in counted},
                {bytes(row["key"]): Count(row["hits"] + 1, row["window_closes"]) for row in seen},
            )

        counts, seen = await self._within_timeout(count())
        verdicts = [judge(counts[key], limit, now) for key, limit in keys]
        verdicts += [judge(seen[key], limit, now) for key, limit in looked_at if key in seen]
        return strictest(verdicts)

    async def forget(self, key: str) -> None:
        """Start the key's count afresh (its next attempt opens a new window)."""

        async def delete() -> None:
            async with self._pool.connection() as conn:
                await self._ensure_schema(conn)
                await conn.execute("DELETE FROM attempt_counters WHERE key = %s", (digest(key),))

        await self._within_timeout(delete())

    async def sweep(self, now: datetime) -> int:
        """Delete the counters whose window has closed; returns how many."""

        async def delete() -> int:
            async with self._pool.connection() as conn:
                await self._ensure_schema(conn)
                cursor = await conn.execute("DELETE FROM attempt_counters WHERE window_closes <= %s", (now,))
                return cursor.rowcount

        return await self._within_timeout(delete())

    async def sweep_forever(self, every: float) -> None:
        """Run beside the service (every instance may: a delete of closed windows is harmless twice)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep(datetime.now(UTC))
            except CountersUnavailable as failure:
                log.warning("could not delete closed attempt counters: %s", failure)

    async def _ensure_schema(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The table is created on first use, not at start, so the service starts while PostgreSQL is down."""
        if self._schema_ready:
            return
        async with conn.transaction():
            # CREATE IF NOT EXISTS races on the catalog when several instances run it at once.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('attempt-counters-schema'))")
            await conn.execute(SCHEMA)
        self._schema_ready = True

    async def _within_timeout(self, operation: Coroutine[Any, Any, T]) -> T:
        """The caller gets its answer within the timeout; an operation cut short finishes its clean-up
        (psycopg cancels the query on the server, which may take seconds more) in the background."""
        task = asyncio.ensure_future(operation)
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(_observe)
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_observe)
            raise CountersUnavailable(f"the attempt counters did not answer within {self._timeout}s")
        try:
            return task.result()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as failure:
            raise CountersUnavailable(f"the attempt counters are unavailable: {failure}") from failure


def _observe(task: asyncio.Future[Any]) -> None:
    """An abandoned operation's outcome is retrieved, so no 'exception was never retrieved' is logged."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
