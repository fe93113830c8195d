"""Reading a topic's partitions between two positions, outside any consumer group: what rebuilds and
status reports need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from command_api.eventstore.membership import partition_count


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


Batches = AsyncIterator[tuple[TopicPartition, list[ConsumerRecord]]]


async def apply_side_by_side(
    batches: Batches, apply: Callable[[TopicPartition, list[ConsumerRecord]], Awaitable[None]]
) -> None:
    """Apply each partition's batches in order, and the partitions side by side: while one batch is
    written, the next ones are fetched and other partitions' are written too. A replay applied one
    batch at a time spent most of its time waiting for PostgreSQL or Elasticsearch. (A row's events
    all come from one partition, so partitions never write the same rows.)"""
    queues: dict[TopicPartition, asyncio.Queue[list[ConsumerRecord] | None]] = {}

    async def worker(tp: TopicPartition, queue: asyncio.Queue[list[ConsumerRecord] | None]) -> None:
        while (records := await queue.get()) is not None:
            await apply(tp, records)

    async with asyncio.TaskGroup() as workers:
        async for tp, records in batches:
            if tp not in queues:
                queues[tp] = asyncio.Queue(maxsize=2)  # a little read-ahead, never the whole log
                workers.create_task(worker(tp, queues[tp]), name=f"apply-{tp.topic}-{tp.partition}")
            await queues[tp].put(records)
        for queue in queues.values():
            await queue.put(None)
