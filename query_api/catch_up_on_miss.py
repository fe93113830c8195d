"""A read that misses, without a consistency token, reads once more after its read model has caught
up with the log (read_models/log_ends.py): it then sees what another instance wrote just now."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from query_api.consistency import ConsistencyToken

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
    """`read()`'s answer; on a miss (`read` raises `missed`, or `missed(answer)` is true), the answer
    of a second read once the projection has caught up. A read with a token has waited for that
    already, and a projection that cannot catch up would only answer the same: their miss stands
    (the first read's error is raised, or its answer returned)."""
    if not isinstance(missed, type):
        answer = await read()
        if missed(answer) and await _read_again(database, projection, token):
            answer = await read()
        return answer
    try:
        return await read()
    except LookupError as error:
        if not isinstance(error, missed) or not await _read_again(database, projection, token):
            raise
    return await read()


async def _read_again(database: CatchesUp, projection: str, token: ConsistencyToken | None) -> bool:
    return token is None and await database.caught_up(projection)
