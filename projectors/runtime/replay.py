"""Reading a topic's partitions between two positions, outside any consumer group: what rebuilds and
status reports need."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from command_api.eventstore.kafka_store import partition_count


async def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """The committed end (last stable offset) of every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in range(await partition_count(bootstrap_servers, topic))
        ]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_range(
    bootstrap_servers: str,
    topic: str,
    start: Mapping[int, int],
    until: Mapping[int, int],
    max_records: int = 5000,
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord]]]:
    """Committed records of each partition p with start[p] <= offset < until[p], in batches."""
    wanted = {p: (start.get(p, 0), end) for p, end in until.items() if start.get(p, 0) < end}
    if not wanted:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, wanted[tp.partition][0])
        remaining = set(partitions)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=max_records)
            for tp, records in batches.items():
                end = wanted[tp.partition][1]
                records = [record for record in records if record.offset < end]
                if records:
                    yield tp, records
            for tp in list(remaining):
                if await consumer.position(tp) >= wanted[tp.partition][1]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
