"""The query side's view of its read models' progress, from the projectors' change notices
(read_models/changes.py), and the caches that hang off it.

One connection per process LISTENs. A notice moves the known position of a projection's partition
(so a consistency wait learns it without polling) and drops the cached answers it may have changed.
While the connection is down (start-up, PostgreSQL restarting) the caches answer nothing, and when it
is back they start empty: a notice missed in between can never leave a stale answer behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo

from event_schemas.topics import in_namespace
from read_models.changes import CHANNEL, ChangeNotice
from read_models.log_ends import LogEnds, caught_up
from read_models.pool import Pool
from read_models.topics import PROJECTION_TOPICS

V = TypeVar("V")
# A connection that dies without a word (a cut network) is noticed within about 11 s, and the caches
# stop answering; this, not the entries' time to live, bounds how stale an answer can get.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
log = logging.getLogger(__name__)


class ReadCache(Generic[V]):
    """Answers of one read model, each kept until a notice says its rows changed, and at most `ttl`
    seconds (30 by default: notices on a live connection are not lost, so this only bounds the cost
    of a bug; searches use 1 s, the index's refresh). `by_key` caches are keyed by the read
    model's row key and lose only the keys a notice names; the others (keyed by a query) lose
    everything on every notice of their projection."""

    # What one cache may hold, in the answers' bytes (a page or a search answer holds up to 100
    # products, and clients choose the keys): the oldest entries go first past either bound.
    MAX_BYTES = 32 * 1024 * 1024

    def __init__(self, feed: ReadModelFeed, *, by_key: bool, ttl: float, max_entries: int) -> None:
        self._feed = feed
        self.by_key = by_key
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[
            Hashable, tuple[float, V, int]
        ] = {}  # key -> (expiry, answer, bytes), oldest first
        self.bytes = 0
        # Moves with every drop, so an answer read from the database before a notice arrived is not
        # stored after it (it may be older than what the notice announced).
        self.generation = 0
        # Loads under way, shared by the reads of the same key that arrive meanwhile: an expired
        # search answer is fetched once, not once per waiting client.
        self._loading: dict[Hashable, asyncio.Task[V]] = {}

    async def through(self, key: Hashable, load: Callable[[], Awaitable[V]], *, fresh: bool = False) -> V:
        """The cached answer for `key`, else `load()`'s (kept for next time). `fresh` skips the cache
        for this read, as a read that waited for a consistency token must."""
        if fresh:
            self.drop([key])  # and a read that started earlier, so may be older, will not be kept
            return await self._load(key, load)
        cached = self._get(key)
        if cached is not None:
            return cached
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(key, load))
            loading.add_done_callback(lambda done: self._loaded(key, done))
        # Shielded: a client that goes away does not cancel the load the others wait for.
        return await asyncio.shield(loading)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        generation = self.generation
        answer = await load()
        self._put(key, answer, generation)
        return answer

    def _loaded(self, key: Hashable, done: asyncio.Task[V]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if not done.cancelled():
            done.exception()  # whoever waited has seen it; nobody else needs to be told

    def _get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None or not self._feed.listening:
            return None
        if entry[0] < time.monotonic():
            self._remove(key)
            return None
        return entry[1]

    def _put(self, key: Hashable, answer: V, generation: int) -> None:
        if generation != self.generation or not self._feed.listening:
            return
        size = _size(answer)
        self._remove(key)
        while self._entries and (
            len(self._entries) >= self._max_entries or self.bytes + size > self.MAX_BYTES
        ):
            self._remove(next(iter(self._entries)))
        self._entries[key] = (time.monotonic() + self._ttl, answer, size)
        self.bytes += size

    def _remove(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]

    def drop(self, keys: Iterable[Hashable] | None) -> None:
        self.generation += 1
        if keys is None or not self.by_key:
            self._entries.clear()
            self.bytes = 0
            self._loading.clear()  # a load begun before the change must not answer reads after it
            return
        for key in keys:
            self._remove(key)
            self._loading.pop(key, None)


def _size(answer: object) -> int:
    """The bytes an answer holds (answers are rendered JSON, alone or with what goes with it)."""
    if isinstance(answer, bytes):
        return len(answer)
    if isinstance(answer, tuple):
        return sum(len(part) for part in answer if isinstance(part, bytes))
    return 0


class ReadModelFeed:
    """Listens to the change notices of one read-model database."""

    RETRY_SECONDS = 1.0

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._caches: dict[str, list[ReadCache[object]]] = defaultdict(list)
        self._positions: dict[tuple[str, str, int], int] = {}
        self._noticed = asyncio.Event()
        self.notices = 0
        self.listening = False

    def cache(
        self, projection: str, *, by_key: bool, ttl: float = 30.0, max_entries: int = 50_000
    ) -> ReadCache[V]:
        cache: ReadCache[V] = ReadCache(self, by_key=by_key, ttl=ttl, max_entries=max_entries)
        self._caches[projection].append(cache)  # type: ignore[arg-type]
        return cache

    def reached(self, projection: str, topic: str, partition: int, offset: int) -> bool:
        """Whether a notice has shown the projection past `offset` (False: not known to be)."""
        return self._positions.get((projection, topic, partition), 0) > offset

    async def next_notice(self, seen: int, within: float) -> None:
        """Wait, at most `within` seconds, for a notice after the first `seen` ones (`notices` counts
        them; read it before checking a position, so a notice in between is not waited for)."""
        if self.notices > seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._noticed.wait(), within)

    async def follow(self) -> None:
        """Listen until cancelled, reconnecting after PostgreSQL comes back."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    make_conninfo(self._conninfo, **KEEPALIVES), autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._start_listening()
                    async for notify in conn.notifies():
                        self._apply(ChangeNotice.from_payload(notify.payload))
            except psycopg.Error as error:
                log.warning("read-model change notices unavailable (%r); retrying", error)
            finally:
                self.listening = False
            await asyncio.sleep(self.RETRY_SECONDS)

    def _start_listening(self) -> None:
        for caches in self._caches.values():
            for cache in caches:
                cache.drop(None)
        self.listening = True

    def _apply(self, notice: ChangeNotice) -> None:
        if notice.reset:
            self._positions = {key: at for key, at in self._positions.items() if key[0] != notice.projection}
        elif notice.topic is not None and notice.partition is not None and notice.next_offset is not None:
            key = (notice.projection, notice.topic, notice.partition)
            self._positions[key] = max(self._positions.get(key, 0), notice.next_offset)
        for cache in self._caches.get(notice.projection, ()):
            cache.drop(notice.keys)
        self.notices += 1
        self._noticed.set()
        self._noticed = asyncio.Event()


@dataclass(frozen=True)
class ReadModelDatabase:
    """A query side's way to its read models: a pool for queries, and the feed of their changes."""

    pool: Pool
    feed: ReadModelFeed
    # The deployment's namespace, which prefixes the topics the read models are built from.
    namespace: str = "commerce"
    log_ends: LogEnds | None = None
    # How long a query without a token waits for its own process's acknowledged writes (0: not at all).
    own_writes_wait: float = 2.0
    # How long a read that misses waits for its read model to catch up with the log.
    miss_wait: float = 5.0

    def topic_of(self, projection: str) -> str:
        return in_namespace(self.namespace, PROJECTION_TOPICS[projection])

    async def caught_up(self, projection: str) -> bool:
        """After a miss: wait for the projection to reach where its topic ends now (read_models/log_ends.py)."""
        if self.log_ends is None:
            return False
        return await caught_up(
            self.pool, projection, self.topic_of(projection), self.log_ends, self.miss_wait
        )
