"""Cached answers and the change notices that drop them, against a real PostgreSQL: an answer is never
kept past a change a projector has announced, nor kept while the notices cannot be heard."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from psycopg import sql

from query_api.read_model_feed import ReadCache, ReadModelFeed
from read_models.changes import ChangeNotice, announce
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

PROJECTION = "catalog"


@pytest.fixture
def database_url(servers: Servers) -> Iterator[str]:
    name = f"feed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(servers.postgres_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield servers.postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(servers.postgres_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def until(condition: Callable[[], bool], what: str, within: float = 10) -> None:
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within}s: {what}")


@asynccontextmanager
async def following(url: str) -> AsyncIterator[ReadModelFeed]:
    feed = ReadModelFeed(url)
    feed.RETRY_SECONDS = 0.1
    task = asyncio.create_task(feed.follow())
    try:
        await until(lambda: feed.listening, "the feed listens")
        yield feed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def notify(url: str, notice: ChangeNotice) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await announce(conn, notice)


async def announced(url: str, feed: ReadModelFeed, notice: ChangeNotice) -> None:
    """Send a batch's notice and wait until the feed has applied it."""
    assert notice.topic is not None and notice.partition is not None and notice.next_offset is not None
    await notify(url, notice)
    position = (notice.projection, notice.topic, notice.partition, notice.next_offset - 1)
    await until(lambda: feed.reached(*position), "the feed applies the notice")


def answer(value: str) -> Callable[[], Awaitable[str]]:
    async def load() -> str:
        return value

    return load


OFFSETS = iter(range(10, 1_000_000))


def changed(*keys: int) -> ChangeNotice:
    """A notice of the next batch, which changed `keys`."""
    return ChangeNotice.of_batch(PROJECTION, "catalog.events", 0, next(OFFSETS), keys)


def test_a_notice_drops_the_answers_of_the_rows_it_names_and_only_those(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            cache: ReadCache[str] = feed.cache(PROJECTION, by_key=True)
            assert await cache.through(1, answer("one, before")) == "one, before"
            assert await cache.through(2, answer("two, before")) == "two, before"
            assert await cache.through(1, answer("one, after")) == "one, before"  # kept

            await announced(database_url, feed, changed(1))

            assert await cache.through(1, answer("one, after")) == "one, after"
            assert await cache.through(2, answer("two, after")) == "two, before"

    asyncio.run(scenario())


def test_an_answer_read_before_a_notice_is_not_kept_after_it(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            cache: ReadCache[str] = feed.cache(PROJECTION, by_key=True)

            async def read_then_a_change_commits() -> str:
                await announced(database_url, feed, changed(1))  # committed while the read was under way
                return "read before the change"

            assert await cache.through(1, read_then_a_change_commits) == "read before the change"
            assert await cache.through(1, answer("read after the change")) == "read after the change"

    asyncio.run(scenario())


def test_answers_keyed_by_query_are_all_dropped_by_any_notice(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            pages: ReadCache[str] = feed.cache(PROJECTION, by_key=False)
            await pages.through("page 1", answer("before"))
            await announced(database_url, feed, changed(99))
            assert await pages.through("page 1", answer("after")) == "after"

    asyncio.run(scenario())


def test_nothing_is_answered_from_the_cache_while_the_notices_cannot_be_heard(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            cache: ReadCache[str] = feed.cache(PROJECTION, by_key=True)
            await cache.through(1, answer("before"))
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
                )
            await until(lambda: not feed.listening, "the feed notices its connection is gone")
            assert await cache.through(1, answer("while deaf")) == "while deaf"
            await until(lambda: feed.listening, "the feed listens again")
            # Whatever was announced in between was missed: the cache starts empty.
            assert await cache.through(1, answer("after")) == "after"

    asyncio.run(scenario())


def test_a_notice_tells_how_far_the_projection_has_got(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            batch = changed(1)
            assert batch.next_offset is not None
            last = batch.next_offset - 1
            assert not feed.reached(PROJECTION, "catalog.events", 0, last)
            await announced(database_url, feed, batch)
            assert feed.reached(PROJECTION, "catalog.events", 0, last)
            assert not feed.reached(PROJECTION, "catalog.events", 0, last + 1)
            await notify(database_url, ChangeNotice(PROJECTION, reset=True))
            await until(
                lambda: not feed.reached(PROJECTION, "catalog.events", 0, last), "the reset is applied"
            )

    asyncio.run(scenario())


def test_reads_of_one_key_arriving_while_it_loads_share_that_load(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            searches: ReadCache[str] = feed.cache(PROJECTION, by_key=False)
            loads = 0
            release = asyncio.Event()

            async def slow_search() -> str:
                nonlocal loads
                loads += 1
                await release.wait()
                return "hits"

            readers = [asyncio.create_task(searches.through("mouse", slow_search)) for _ in range(5)]
            await asyncio.sleep(0)
            release.set()
            assert await asyncio.gather(*readers) == ["hits"] * 5
            assert loads == 1

    asyncio.run(scenario())


def test_a_read_arriving_after_a_notice_does_not_share_a_load_begun_before_it(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            pages: ReadCache[str] = feed.cache(PROJECTION, by_key=False)
            release = asyncio.Event()

            async def read_before_the_change() -> str:
                await release.wait()
                return "before"

            earlier = asyncio.create_task(pages.through("page 1", read_before_the_change))
            await asyncio.sleep(0)
            await announced(database_url, feed, changed(1))
            assert await pages.through("page 1", answer("after")) == "after"
            release.set()
            assert await earlier == "before"
            assert await pages.through("page 1", answer("later")) == "after"

    asyncio.run(scenario())
