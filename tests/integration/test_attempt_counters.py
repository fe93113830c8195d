"""The attempt counters in a real PostgreSQL: shared by every instance, atomic under concurrency, windows
that close and open again, and an answer within the timeout when PostgreSQL does not answer."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from command_api.rate_limits.counters import AttemptCounters, CountersUnavailable
from command_api.rate_limits.windows import ALLOWED, Limit, Verdict
from read_models.pool import make_pool
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
THREE_PER_MINUTE = Limit(attempts=3, seconds=60)


@pytest.fixture(scope="module")
def database_url(servers: Servers) -> Iterator[str]:
    """A database of its own, so sweeping closed windows touches no other test's counters."""
    name = f"t{uuid.uuid4().hex[:10]}_counters"
    with psycopg.connect(servers.postgres_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield servers.postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(servers.postgres_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@asynccontextmanager
async def instance(database_url: str, within: float = 5.0) -> AsyncIterator[AttemptCounters]:
    """The counters as one service instance has them: its own pool on the shared database."""
    pool = make_pool(database_url, max_size=4, timeout=within)
    await pool.open(wait=False)
    try:
        yield AttemptCounters(pool, timeout=within)
    finally:
        await pool.close()


def new_key() -> str:
    return f"test:{uuid.uuid4()}"


def test_two_instances_count_one_key_together(database_url: str) -> None:
    async def scenario() -> list[Verdict]:
        key = new_key()
        async with instance(database_url) as first, instance(database_url) as second:
            return [
                await (first, second)[n % 2].attempt({key: THREE_PER_MINUTE}, NOW + timedelta(seconds=n))
                for n in range(4)
            ]

    assert asyncio.run(scenario()) == [ALLOWED] * 3 + [Verdict(allowed=False, retry_after=57)]


def test_concurrent_attempts_never_slip_under_the_limit(database_url: str) -> None:
    async def scenario() -> list[Verdict]:
        key = new_key()
        async with instance(database_url) as first, instance(database_url) as second:
            return await asyncio.gather(
                *((first, second)[n % 2].attempt({key: Limit(10, 60)}, NOW) for n in range(40))
            )

    verdicts = asyncio.run(scenario())
    assert sum(verdict.allowed for verdict in verdicts) == 10


def test_once_its_window_has_closed_a_key_counts_from_one_again(database_url: str) -> None:
    async def scenario() -> list[bool]:
        key = new_key()
        async with instance(database_url) as counters:
            times = [NOW, NOW, NOW, NOW + timedelta(seconds=59), NOW + timedelta(seconds=60)]
            return [(await counters.attempt({key: THREE_PER_MINUTE}, at)).allowed for at in times]

    assert asyncio.run(scenario()) == [True, True, True, False, True]


def test_an_attempt_against_several_keys_is_refused_by_the_one_over_its_limit(database_url: str) -> None:
    async def scenario() -> tuple[Verdict, Verdict]:
        busy, fresh = new_key(), new_key()
        async with instance(database_url) as counters:
            for _ in range(3):
                await counters.attempt({busy: THREE_PER_MINUTE}, NOW)
            refused = await counters.attempt({busy: THREE_PER_MINUTE, fresh: Limit(100, 3600)}, NOW)
            alone = await counters.attempt({fresh: Limit(100, 3600)}, NOW)
        return refused, alone

    refused, alone = asyncio.run(scenario())
    assert refused == Verdict(allowed=False, retry_after=60)
    assert alone == ALLOWED  # the refused attempt still counted against the other key, once


def test_a_forgotten_key_counts_from_one_again(database_url: str) -> None:
    async def scenario() -> list[bool]:
        key = new_key()
        async with instance(database_url) as counters:
            verdicts = [(await counters.attempt({key: THREE_PER_MINUTE}, NOW)).allowed for _ in range(4)]
            await counters.forget(key)
            verdicts.append((await counters.attempt({key: THREE_PER_MINUTE}, NOW)).allowed)
        return verdicts

    assert asyncio.run(scenario()) == [True, True, True, False, True]


def test_a_sweep_deletes_the_counters_whose_window_has_closed_and_keeps_the_rest(database_url: str) -> None:
    async def scenario() -> tuple[int, bool]:
        short, long = new_key(), new_key()
        async with instance(database_url) as counters:
            await counters.sweep(NOW + timedelta(days=365))  # whatever earlier tests left
            for _ in range(3):
                await counters.attempt({short: Limit(3, 60), long: Limit(3, 3600)}, NOW)
            deleted = await counters.sweep(NOW + timedelta(seconds=61))
            still_counted = not (await counters.attempt({long: Limit(3, 3600)}, NOW)).allowed
        return deleted, still_counted

    assert asyncio.run(scenario()) == (1, True)


def test_the_table_holds_digests_not_the_keys_themselves(database_url: str) -> None:
    key = f"login-failures:{uuid.uuid4().hex}@example.com"

    async def scenario() -> None:
        async with instance(database_url) as counters:
            await counters.attempt({key: THREE_PER_MINUTE}, NOW)

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        dump = conn.execute("SELECT string_agg(encode(key, 'escape'), ',') FROM attempt_counters").fetchone()
    assert dump is not None and key.split(":")[1] not in str(dump[0])


def test_an_unanswering_postgresql_gives_counters_unavailable_within_the_timeout() -> None:
    # A listener that never accepts: connections open, then nothing answers (the hardest kind of down).
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        port = black_hole.getsockname()[1]

        async def scenario() -> float:
            async with instance(f"postgresql://users@127.0.0.1:{port}/users", within=0.5) as counters:
                started = time.monotonic()
                with pytest.raises(CountersUnavailable):
                    await counters.attempt({new_key(): THREE_PER_MINUTE}, NOW)
                return time.monotonic() - started

        took = asyncio.run(scenario())
    assert took < 2, f"the refusal should come within the 0.5 s timeout, took {took:.1f}s"
