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


def answer(value: str) -> Callable[[], Awaitable[str]]:
    async def load() -> str:
        return value

    return load


def changed(*keys: int) -> ChangeNotice:
    return ChangeNotice.of_batch(PROJECTION, "catalog.events", 0, 10, keys)


def test_a_notice_drops_the_answers_of_the_rows_it_names_and_only_those(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            cache: ReadCache[str] = feed.cache(PROJECTION, by_key=True)
            assert await cache.through(1, answer("one, before")) == "one, before"
            assert await cache.through(2, answer("two, before")) == "two, before"
            assert await cache.through(1, answer("one, after")) == "one, before"  # kept

            await notify(database_url, changed(1))
            await feed.next_notice(within=5)

            assert await cache.through(1, answer("one, after")) == "one, after"
            assert await cache.through(2, answer("two, after")) == "two, before"

    asyncio.run(scenario())


def test_an_answer_read_before_a_notice_is_not_kept_after_it(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            cache: ReadCache[str] = feed.cache(PROJECTION, by_key=True)

            async def read_then_a_change_commits() -> str:
                await notify(database_url, changed(1))  # committed while the read was under way
                await feed.next_notice(within=5)
                return "read before the change"

            assert await cache.through(1, read_then_a_change_commits) == "read before the change"
            assert await cache.through(1, answer("read after the change")) == "read after the change"

    asyncio.run(scenario())


def test_answers_keyed_by_query_are_all_dropped_by_any_notice(database_url: str) -> None:
    async def scenario() -> None:
        async with following(database_url) as feed:
            pages: ReadCache[str] = feed.cache(PROJECTION, by_key=False)
            await pages.through("page 1", answer("before"))
            await notify(database_url, changed(99))
            await feed.next_notice(within=5)
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
            assert not feed.reached(PROJECTION, "catalog.events", 0, 9)
            await notify(database_url, changed(1))
            await feed.next_notice(within=5)
            assert feed.reached(PROJECTION, "catalog.events", 0, 9)
            assert not feed.reached(PROJECTION, "catalog.events", 0, 10)
            await notify(database_url, ChangeNotice(PROJECTION, reset=True))
            await feed.next_notice(within=5)
            assert not feed.reached(PROJECTION, "catalog.events", 0, 9)

    asyncio.run(scenario())
