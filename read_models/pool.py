"""PostgreSQL connection pools, configured the same way for projectors and query apps."""

from __future__ import annotations

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
