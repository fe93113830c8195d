"""HTTP between the platform's own processes: a command forwarded to its partition's owner, the order
saga's steps. These calls are on every order's path, so they go through aiohttp, whose pool costs far
less per request than httpx's: in a profile of the `./run up` platform taking orders, httpx's
`AsyncClient.request` held 42 % of the saga's samples and the forwarding 21 % of an orders gateway's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

# An idle connection is dropped after this long. uvicorn closes an idle keep-alive connection after 5 s;
# a client that kept it longer could send a request into a connection the server is closing, and a
# command sent so would be neither surely delivered nor surely lost.
KEEPALIVE_SECONDS = 2.0


class Unreachable(Exception):
    """No answer: the connection failed or broke, or the time ran out."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]  # as received, in order (a name may repeat)
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class ServiceHttp:
    """One connection pool for a process's calls to its peers, each bounded by `timeout` seconds."""

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ServiceHttp:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # Peers answer with their own JSON; nothing here sends or keeps cookies.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json_body: Any = None,
    ) -> Answer:
        """The answer to `method url` (`url` sent as it is: already encoded, its query included)."""
        if self._session is None:
            raise RuntimeError("ServiceHttp is used outside its `async with`")
        sent = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, URL(url, encoded=True), headers=sent, data=content
            ) as response:
                body = await response.read()
                return Answer(response.status, tuple(response.headers.items()), body)
        except (aiohttp.ClientError, TimeoutError) as failure:
            raise Unreachable(f"{method} {url}: {failure!r}") from failure
