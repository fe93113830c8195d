"""PostgreSQL connection pools, configured the same way for projectors and query apps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]


def make_pool(conninfo: str, *, max_size: int = 10, timeout: float = 5.0) -> Pool:
    """A pool that opens lazily, so a process starts (and answers 503) while PostgreSQL is down."""
    return AsyncConnectionPool(
        conninfo,
        connection_class=AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        timeout=timeout,
        open=False,
        kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": 5},
    )


@dataclass
class _Shared:
    pool: Pool
    users: int = 0


# The pools in use in this process, by database and event loop.
_SHARED: dict[tuple[str, asyncio.AbstractEventLoop], _Shared] = {}


@asynccontextmanager
async def shared_pool(conninfo: str, max_size: int) -> AsyncIterator[Pool]:
    """The process's one pool for this database: what a gateway's command and query sides, or a
    projector process's projections, open on one database is shared, so that a process holds at most
    `max_size` connections to it (the platform's many processes share PostgreSQL's connection limit).
    The first user opens it (lazily: a process starts while PostgreSQL is down) and the last closes it."""
    key = (conninfo, asyncio.get_running_loop())
    shared = _SHARED.get(key)
    if shared is None:
        shared = _SHARED[key] = _Shared(make_pool(conninfo, max_size=max_size))
        await shared.pool.open(wait=False)
    shared.users += 1
    try:
        yield shared.pool
    finally:
        shared.users -= 1
        if shared.users == 0:
            del _SHARED[key]
            await shared.pool.close()
