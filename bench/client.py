"""The bench's own HTTP requests (creating its catalog, probing projection lag), with aiohttp: httpx's
connection pool was the bottleneck with 64 requests in flight (about 80 commands/s, where aiohttp and
wrk got about 750/s from the same server on this machine)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def session(concurrency: int) -> aiohttp.ClientSession:
    """A session keeping up to `concurrency` connections open."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def send(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: Mapping[str, Any] | str | None = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 1,
) -> Answer:
    """One request; with `attempts` > 1, a 503 or a dropped connection is tried again (only safe for
    reads and for commands carrying an Idempotency-Key)."""
    sent_headers = dict(headers or {})
    data: str | None = None
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        sent_headers["Content-Type"] = "application/json"
    for attempt in range(1, attempts + 1):
        try:
            async with client.request(method, url, data=data, headers=sent_headers) as response:
                answer = Answer(response.status, CIMultiDict(response.headers), await response.read())
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            if attempt == attempts:
                raise
        else:
            if answer.status != 503 or attempt == attempts:
                return answer
        await asyncio.sleep(min(0.1 * attempt, 1.0))
    raise AssertionError("unreachable: the last attempt returns or raises")
