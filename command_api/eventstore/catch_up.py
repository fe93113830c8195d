"""Reading one partition to its committed end into a writer's state, before the writer decides.

A record this version of the code cannot read (an event type it does not know, a schema version
newer than its own, a payload its model refuses) is never skipped: deciding without it could
contradict it. The catch-up stops there and says where and why.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from command_api.eventstore.model import Position
from command_api.eventstore.partition_state import PartitionState
from event_schemas.registry import EventRegistry, UnknownEvent


class UnreadableRecord(Exception):
    """A committed record the writer cannot fold; the partition cannot be decided for by this version."""

    def __init__(self, partition: TopicPartition, offset: int, reason: str) -> None:
        super().__init__(f"{partition.topic}[{partition.partition}] offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class CatchUpStalled(Exception):
    """No record arrived for a while although the partition's end is further on (the broker is gone)."""


async def read_to_end(
    bootstrap_servers: str,
    partition: TopicPartition,
    state: PartitionState,
    registry: EventRegistry,
    *,
    stall_timeout: float,
) -> None:
    """Fold every committed record from where `state` stopped to the end of the partition. Bounded by
    progress, not by total time: a long log takes as long as it takes, a dead broker fails soon."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        request_timeout_ms=int(stall_timeout * 1000),
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, state.next_offset)
        while (reached := await consumer.position(partition)) < end:
            batches = await consumer.getmany(
                partition, timeout_ms=int(stall_timeout * 1000), max_records=10_000
            )
            records = batches.get(partition, [])
            if not records and await consumer.position(partition) == reached:
                raise CatchUpStalled(
                    f"{partition} gave nothing for {stall_timeout}s at {reached}, before {end}"
                )
            for record in records:
                try:
                    event = registry.from_bytes(record.value)
                except (UnknownEvent, ValidationError, ValueError, KeyError, TypeError) as error:
                    raise UnreadableRecord(partition, record.offset, _reason(error)) from error
                state.apply(event, Position(partition.topic, partition.partition, record.offset))
        state.next_offset = max(state.next_offset, end)
    finally:
        await consumer.stop()


def _reason(error: Exception) -> str:
    if isinstance(error, UnknownEvent):
        return f"unknown event {error} (written by a newer version of the code?)"
    return f"{type(error).__name__}: {error}"
