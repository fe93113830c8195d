"""The query side's answer caches are bounded by bytes as well as entries, so clients choosing the
keys (pages, searches) cannot make a process hold more than the budget."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from query_api.read_model_feed import ReadCache


class ListeningFeed:
    listening = True


def test_the_oldest_answers_go_once_the_cache_holds_its_byte_budget() -> None:
    cache: ReadCache[bytes] = ReadCache(cast(Any, ListeningFeed()), by_key=False, ttl=30, max_entries=1_000)
    cache.MAX_BYTES = 10_000
    answer = b"x" * 3_000

    async def fill() -> None:
        for page in range(10):
            await cache.through(page, lambda: asyncio.sleep(0, answer))

    asyncio.run(fill())
    assert cache.bytes == 9_000, "three answers fit in 10,000 bytes"
    assert cache._get(9) == answer and cache._get(6) is None, "the oldest went first"
    cache.drop(None)
    assert cache.bytes == 0
