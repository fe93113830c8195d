"""The arithmetic of a limit, pure: at most `attempts` per window of `seconds`. A key's window opens at
its first attempt and closes `seconds` later; the next attempt after that opens a new one, counting from
one. Over any span of `seconds` a key therefore gets at most twice its limit."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limit:
    attempts: int
    seconds: int

    def window_opened(self, now: datetime) -> datetime:
        """When a window opened `now` closes."""
        return now + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Count:
    """A key's counter right after an attempt was added to it."""

    hits: int
    window_closes: datetime


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # whole seconds until the window that refused closes (at least 1)


ALLOWED = Verdict(allowed=True)


def judge(count: Count, limit: Limit, now: datetime) -> Verdict:
    if count.hits <= limit.attempts:
        return ALLOWED
    return Verdict(allowed=False, retry_after=max(1, math.ceil((count.window_closes - now).total_seconds())))


def strictest(verdicts: Iterable[Verdict]) -> Verdict:
    """One attempt counted against several keys is refused if any refuses it, until the last one allows."""
    refused = [verdict for verdict in verdicts if not verdict.allowed]
    return max(refused, key=lambda verdict: verdict.retry_after, default=ALLOWED)
