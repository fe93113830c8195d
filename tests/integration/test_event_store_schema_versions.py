"""A writer reads old schema versions through upcasters, and stops loudly (not silently, not hanging
its callers) at a record written by a newer version of the code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import ClassVar
from uuid import uuid4

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from command_api.eventstore.errors import EventStoreUnavailable
from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.eventstore.model import AggregateKind, CommandContext, Loaded
from command_api.eventstore.partitioning import partition_of
from event_schemas.envelope import Event
from event_schemas.registry import EventRegistry, Payload
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

PARTITIONS = 2
TIMEOUT = 3.0
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class NoteTaken(Event):
    """Version 2: the note's words are `text` (version 1 called them `body`)."""

    event_type: ClassVar[str] = "NoteTaken"
    schema_version: ClassVar[int] = 2
    aggregate_type: ClassVar[str] = "Notebook"

    text: str


def body_becomes_text(payload: Payload) -> Payload:
    return {"text": payload.pop("body"), **payload}


REGISTRY = EventRegistry([NoteTaken])
REGISTRY.register_upcaster("NoteTaken", 1, body_becomes_text)

NOTEBOOK: AggregateKind[tuple[str, ...]] = AggregateKind(
    "Notebook", (), lambda notes, event: (*notes, event.text) if isinstance(event, NoteTaken) else notes
)


def note(notebook: str, version: int, text: str) -> NoteTaken:
    return NoteTaken(aggregate_id=notebook, aggregate_version=version, occurred_at=NOW, text=text)


def written_by(schema_version: int, event: NoteTaken, payload: Payload) -> bytes:
    """The bytes another version of the code would have written for `event`."""
    document = orjson.loads(REGISTRY.to_bytes(event))
    document["schema_version"] = schema_version
    document["payload"] = payload
    return orjson.dumps(document)


@asynccontextmanager
async def notebooks_topic(servers: Servers) -> AsyncIterator[str]:
    topic = f"test-notebooks-{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        yield topic
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def write_raw(servers: Servers, topic: str, notebook: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        partition = partition_of(NOTEBOOK, notebook, PARTITIONS)
        await producer.send_and_wait(topic, value, key=notebook.encode(), partition=partition)
    finally:
        await producer.stop()


@asynccontextmanager
async def notebook_store(servers: Servers, topic: str) -> AsyncIterator[KafkaEventStore]:
    store = KafkaEventStore(
        bootstrap_servers=servers.kafka_bootstrap,
        topic=topic,
        group=f"{topic}-command",
        instance_url="http://schema-versions-test",
        kinds=[NOTEBOOK],
        registry=REGISTRY,
        timeout=TIMEOUT,
    )
    await store.start()
    try:
        await store.wait_until_ready(within=60)
        yield store
    finally:
        await store.stop()


def notebooks_in_both_partitions() -> tuple[str, str]:
    names = (f"notebook-{uuid4().hex[:8]}" for _ in range(1000))
    by_partition: dict[int, str] = {}
    for name in names:
        by_partition.setdefault(partition_of(NOTEBOOK, name, PARTITIONS), name)
        if len(by_partition) == PARTITIONS:
            return by_partition[0], by_partition[1]
    raise AssertionError("no notebook names for both partitions")


def test_a_log_holding_an_old_and_the_current_version_folds_through_the_upcaster(servers: Servers) -> None:
    async def scenario() -> None:
        async with notebooks_topic(servers) as topic:
            notebook = f"notebook-{uuid4().hex[:8]}"
            first = note(notebook, 1, "written by version 1")
            await write_raw(servers, topic, notebook, written_by(1, first, {"body": "written by version 1"}))
            async with notebook_store(servers, topic) as store:
                await store.execute(
                    NOTEBOOK, notebook, lambda _: [note(notebook, 2, "written now")], CommandContext()
                )
            # A store starting afresh replays the log holding both versions.
            async with notebook_store(servers, topic) as store:
                loaded: Loaded[tuple[str, ...]] = await store.load(NOTEBOOK, notebook)
            assert loaded.state == ("written by version 1", "written now")
            assert loaded.version == 2

    asyncio.run(scenario())


def test_a_record_of_a_newer_version_halts_its_partition_and_callers_hear_503_at_once(
    servers: Servers,
) -> None:
    async def scenario() -> None:
        async with notebooks_topic(servers) as topic:
            halted, healthy = notebooks_in_both_partitions()
            await write_raw(
                servers, topic, halted, written_by(3, note(halted, 1, "?"), {"words": ["from", "v3"]})
            )
            async with notebook_store(servers, topic) as store:
                started = time.monotonic()
                with pytest.raises(EventStoreUnavailable, match=r"halted.*NoteTaken v3"):
                    await store.execute(
                        NOTEBOOK, halted, lambda _: [note(halted, 2, "after")], CommandContext()
                    )
                assert time.monotonic() - started < 1.0, "a halted partition answers at once"
                halted_partition = partition_of(NOTEBOOK, halted, PARTITIONS)
                state = store.writer_states()[halted_partition]
                assert state.startswith("halted") and "offset 0" in state, state
                # The other partition goes on.
                committed = await store.execute(
                    NOTEBOOK, healthy, lambda _: [note(healthy, 1, "still writing")], CommandContext()
                )
                assert committed.position is not None

    asyncio.run(scenario())
