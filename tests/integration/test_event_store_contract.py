"""One contract, two implementations: the in-memory event store (for unit tests) and the Kafka one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import pytest

from command_api.eventstore.errors import ConcurrencyConflict
from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.eventstore.memory_store import InMemoryEventStore
from command_api.eventstore.model import CommandContext, EventStore
from command_api.users import domain
from command_api.users.domain import USER, user_aggregate_id
from event_schemas import topics
from event_schemas.registry import REGISTRY
from event_schemas.users import UserRegistered
from tests.support.deployment import Deployment
from tests.support.users_client import new_email

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

StoreFactory = Callable[[], AbstractAsyncContextManager[EventStore]]


@asynccontextmanager
async def memory_store() -> AsyncIterator[EventStore]:
    yield InMemoryEventStore([USER])


def kafka_store_of(deployment: Deployment) -> StoreFactory:
    @asynccontextmanager
    async def kafka_store() -> AsyncIterator[EventStore]:
        settings = deployment.settings
        store = KafkaEventStore(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=topics.in_namespace(settings.namespace, topics.USERS),
            group=topics.in_namespace(settings.namespace, "users-command"),
            instance_url="http://contract-test",
            kinds=[USER],
            registry=REGISTRY,
            timeout=10,
        )
        await store.start()
        try:
            await store.wait_until_ready(within=60)
            yield store
        finally:
            await store.stop()

    return kafka_store


@pytest.fixture(params=["memory", "kafka"])
def with_store(request: pytest.FixtureRequest) -> Callable[[Callable[[EventStore], Awaitable[None]]], None]:
    factory: StoreFactory = memory_store
    if request.param == "kafka":
        request.applymarker(pytest.mark.integration)
        factory = kafka_store_of(request.getfixturevalue("own_deployment"))

    def run(scenario: Callable[[EventStore], Awaitable[None]]) -> None:
        async def main() -> None:
            async with factory() as store:
                await scenario(store)

        asyncio.run(main())

    return run


async def register(store: EventStore, email: str, key: str | None = None) -> int:
    committed = await store.execute(
        USER,
        user_aggregate_id(email),
        lambda user: domain.register(
            user, username="u", email=email, password_hash=HASH, role="customer", now=NOW
        ),
        CommandContext(idempotency_key=key),
    )
    [event] = committed.events
    assert isinstance(event, UserRegistered)
    return event.user_id


def test_executed_decisions_are_visible_to_the_next_load(with_store: Callable[..., None]) -> None:
    async def scenario(store: EventStore) -> None:
        email = new_email()
        user_id = await register(store, email)
        loaded = await store.load(USER, user_aggregate_id(email))
        assert (loaded.version, loaded.state.user_id, loaded.state.email) == (1, user_id, email)

    with_store(scenario)


def test_a_peek_sees_every_committed_decision_and_nothing_of_one_that_failed(
    with_store: Callable[..., None],
) -> None:
    async def scenario(store: EventStore) -> None:
        email = new_email()
        assert (await store.peek(USER, user_aggregate_id(email))).version == 0
        user_id = await register(store, email)
        peeked = await store.peek(USER, user_aggregate_id(email))
        assert (peeked.version, peeked.state.user_id) == (1, user_id)
        with pytest.raises(domain.EmailAlreadyRegistered):
            await register(store, email)
        assert (await store.peek(USER, user_aggregate_id(email))).version == 1

    with_store(scenario)


def test_a_retry_with_the_same_idempotency_key_returns_the_first_result(
    with_store: Callable[..., None],
) -> None:
    async def scenario(store: EventStore) -> None:
        email = new_email()
        first = await register(store, email, key="once")
        again = await register(store, email, key="once")
        assert again == first
        assert (await store.load(USER, user_aggregate_id(email))).version == 1

    with_store(scenario)


def test_an_append_against_a_stale_version_is_refused(with_store: Callable[..., None]) -> None:
    async def scenario(store: EventStore) -> None:
        email = new_email()
        stale = await store.load(USER, user_aggregate_id(email))
        events = domain.register(
            stale, username="u", email=email, password_hash=HASH, role="customer", now=NOW
        )
        await store.append(USER, stale.aggregate_id, 0, events, CommandContext())
        with pytest.raises(ConcurrencyConflict):
            await store.append(USER, stale.aggregate_id, 0, events, CommandContext())

    with_store(scenario)


def test_concurrent_decisions_on_one_aggregate_never_both_succeed(with_store: Callable[..., None]) -> None:
    async def scenario(store: EventStore) -> None:
        email = new_email()
        outcomes = await asyncio.gather(*(register(store, email) for _ in range(10)), return_exceptions=True)
        assert sum(isinstance(o, int) for o in outcomes) == 1
        assert sum(isinstance(o, domain.EmailAlreadyRegistered) for o in outcomes) == 9

    with_store(scenario)


def test_numeric_ids_are_unique_across_partitions(with_store: Callable[..., None]) -> None:
    async def scenario(store: EventStore) -> None:
        ids = await asyncio.gather(*(register(store, new_email()) for _ in range(60)))
        assert len(set(ids)) == 60

    with_store(scenario)


def test_callers_that_give_up_do_not_stall_the_others(with_store: Callable[..., None]) -> None:
    async def scenario(store: EventStore) -> None:
        emails = [new_email() for _ in range(10)]
        # Each email four times: one registration succeeds, three are refused.
        tasks = [asyncio.create_task(register(store, emails[i % 10])) for i in range(40)]
        await asyncio.sleep(0)
        for task in tasks[::3]:
            task.cancel()  # a client that disconnected while its command waited its turn
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        expected = int | domain.EmailAlreadyRegistered | asyncio.CancelledError
        assert all(isinstance(outcome, expected) for outcome in outcomes), outcomes
        assert await register(store, new_email()) > 0

    with_store(scenario)
