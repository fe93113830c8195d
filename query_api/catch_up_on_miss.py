"""A read that misses, without a consistency token, reads once more after its read model has caught
up with the log (read_models/log_ends.py): it then sees what another instance wrote just now."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from query_api.consistency import ConsistencyToken
from read_models.read_again import read_again_once_caught_up

R = TypeVar("R")


class CatchesUp(Protocol):
    """What the read needs of its read models (a ReadModelDatabase): a bounded wait for one to
    reach where its topic ends now, True when it got there."""

    async def caught_up(self, projection: str) -> bool: ...


async def read_catching_up_on_miss(
    read: Callable[[], Awaitable[R]],
    database: CatchesUp,
    projection: str,
    token: ConsistencyToken | None,
    *,
    missed: type[LookupError] | Callable[[R], bool],
) -> R:
    """`read()`'s answer, read again on a miss once the projection has caught up; a read with a token
    has waited for its write already, so its miss stands."""

    async def catch_up() -> bool:
        return token is None and await database.caught_up(projection)

    return await read_again_once_caught_up(read, missed=missed, catch_up=catch_up)
