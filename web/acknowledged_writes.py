"""The writes this process has acknowledged to each caller, per topic partition: the read side of the
same process waits for them before answering that caller's read when it carries no consistency token,
so a client that reads from the instance it wrote to sees its own writes without sending anything,
and nobody else's read waits for them.

A caller is known by the `Authorization` header it sends (the same token on its writes and reads); an
anonymous read waits for nothing (a read that misses catches up with the log instead, see
read_models/log_ends.py)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

# The caller of the request being served (its Authorization header), set by CallerMiddleware.
CALLER: ContextVar[str | None] = ContextVar("caller", default=None)


class CallerMiddleware:
    """Notes who calls, for the whole request (a plain ASGI middleware: it costs a header scan)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        marker = CALLER.set(None if caller is None else caller.decode("latin-1"))
        try:
            await self.app(scope, receive, send)
        finally:
            CALLER.reset(marker)


def _digest(caller: str) -> bytes:
    """Callers are kept by a digest of their Authorization header: tokens stay out of memory dumps,
    and every entry is as small as any other."""
    return hashlib.blake2b(caller.encode("latin-1"), digest_size=16).digest()


class AcknowledgedWrites:
    # Callers remembered (the least recently written-for is forgotten first): a bound on memory.
    CALLERS = 50_000

    def __init__(self) -> None:
        self._by_caller: OrderedDict[bytes, dict[str, dict[int, int]]] = OrderedDict()

    def record(self, caller: str, topic: str, partition: int, offset: int) -> None:
        key = _digest(caller)
        ends = self._by_caller.pop(key, None) or {}
        self._by_caller[key] = ends
        if len(self._by_caller) > self.CALLERS:
            self._by_caller.popitem(last=False)
        partitions = ends.setdefault(topic, {})
        if offset > partitions.get(partition, -1):
            partitions[partition] = offset

    def last_offsets(self, caller: str | None, topic: str) -> dict[int, int]:
        """Partition -> the offset of the last event acknowledged there to the caller."""
        if caller is None:
            return {}
        return self._by_caller.get(_digest(caller), {}).get(topic, {})


# One per process: the command side records, the query side reads (both sides may share a process).
ACKNOWLEDGED_WRITES = AcknowledgedWrites()
