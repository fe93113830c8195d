"""Reading a topic back, as committed, to check what the command side appended; and records as a
consumer hands them over, for feeding a projector's loop directly."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from command_api.eventstore.membership import partition_count
from event_schemas.envelope import Event
from event_schemas.registry import REGISTRY


async def _committed_records(bootstrap: str, topic: str) -> list[tuple[Event, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(await partition_count(bootstrap, topic))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)  # seek_to_beginning races with the default "latest" reset
        found: list[tuple[Event, dict[str, bytes]]] = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                found += [(REGISTRY.from_bytes(r.value), dict(r.headers)) for r in batch.get(tp, [])]
        return found
    finally:
        await consumer.stop()


def committed_events(bootstrap: str, topic: str) -> list[tuple[Event, dict[str, bytes]]]:
    return asyncio.run(_committed_records(bootstrap, topic))


def consumer_record(tp: TopicPartition, offset: int, event: Event) -> ConsumerRecord[bytes, bytes]:
    """`event` as a consumer of `tp` gets it at `offset`: its bytes and headers as the event store writes them."""
    value = REGISTRY.to_bytes(event)
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=event.aggregate_id.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(event.aggregate_id),
        serialized_value_size=len(value),
        headers=REGISTRY.headers(event),
    )
