"""A read of a read model that misses may be a read of something written just now, on another instance:
it reads once more after the read model has caught up with its topic's log (boundedly). Used by the
query routes and by the command sides' replicas alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

R = TypeVar("R")


async def read_again_once_caught_up(
    read: Callable[[], Awaitable[R]],
    *,
    missed: type[LookupError] | Callable[[R], bool],
    catch_up: Callable[[], Awaitable[bool]],
) -> R:
    """`read()`'s answer; on a miss (`read` raises `missed`, or `missed(answer)` is true), the answer of
    a second read, if `catch_up()` says the read model got to where its log ended. One that could not
    would only answer the same: the first miss stands (its error is raised, or its answer returned)."""
    if not isinstance(missed, type):
        answer = await read()
        if missed(answer) and await catch_up():
            answer = await read()
        return answer
    try:
        return await read()
    except LookupError as error:
        if not isinstance(error, missed) or not await catch_up():
            raise
    return await read()
