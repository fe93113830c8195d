"""Finding the record of a batch that cannot be applied, while applying every record before it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Poison(Generic[R]):
    """The first record that failed permanently, and how."""

    record: R
    error: Exception


async def apply_up_to_poison(
    apply: Callable[[Sequence[R]], Awaitable[None]], records: Sequence[R]
) -> Poison[R] | None:
    """Apply `records` in order, in prefixes that halve until one lands, so that the read model ends
    exactly before the first record that fails: a few attempts per batch (about log2(len) for each
    prefix that lands), not one transaction per record. `apply` retries transient failures itself;
    whatever it raises is taken as the records' fault. None if every record landed."""
    pending = records
    while pending:
        size = len(pending)
        while True:
            try:
                await apply(pending[:size])
                break
            except Exception as error:
                if size == 1:
                    return Poison(pending[0], error)
                size //= 2
        pending = pending[size:]
    return None
