"""A partition writer's producer: its transactions time out in seconds, not the client's 60 s."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from command_api.eventstore.kafka_store import KafkaEventStore
from command_api.eventstore.partition_producer import PartitionProducer
from command_api.users.domain import USER
from event_schemas.registry import REGISTRY


def test_a_dead_writers_open_transaction_pins_its_partition_for_seconds_only() -> None:
    async def scenario() -> None:
        store = KafkaEventStore(
            bootstrap_servers="unused:9092",
            topic="t.users.events",
            group="t.users-command",
            instance_url="http://a",
            kinds=[USER],
            registry=REGISTRY,
            timeout=5,
        )
        settings = store.writer_settings(0).producer
        producer = PartitionProducer(settings, TopicPartition("t.users.events", 0), REGISTRY)
        # An open transaction holds back the partition's committed end for every read_committed reader
        # until it is committed, aborted by the next owner's fencing, or timed out by the broker.
        assert producer.transaction_timeout_ms == 10_000
        assert settings.transactional_id == "t.users-command-writer-0"

    asyncio.run(scenario())
