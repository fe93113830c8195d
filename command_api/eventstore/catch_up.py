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


class NotThisLog(Exception):
    """The state was folded from another log than the partition's (the topic was deleted and made
    again, a cluster replaced): the record it last folded is not where it says."""


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
    """Fold every committed record from where `state` stopped to the end of the partition, flushing the
    state to its store as it goes. Bounded by progress, not by total time: a long log takes as long as
    it takes, a dead broker fails soon. A state that was folded from another log is refused
    (`NotThisLog`) before anything is folded into it."""
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
        await _check_same_log(consumer, partition, state, registry, end, stall_timeout)
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
            if state.flush_due:
                state.flush()
        state.next_offset = max(state.next_offset, end)
    finally:
        await consumer.stop()


async def _check_same_log(
    consumer: AIOKafkaConsumer,
    partition: TopicPartition,
    state: PartitionState,
    registry: EventRegistry,
    end: int,
    stall_timeout: float,
) -> None:
    if state.last_event is None:
        if state.next_offset > end:
            raise NotThisLog(f"the state is at offset {state.next_offset}, the partition ends at {end}")
        return
    offset, event_id = state.last_event
    if offset >= end:
        raise NotThisLog(f"the state folded offset {offset}, the partition ends at {end}")
    consumer.seek(partition, offset)
    records = (await consumer.getmany(partition, timeout_ms=int(stall_timeout * 1000), max_records=1)).get(
        partition, []
    )
    if not records:
        raise CatchUpStalled(f"{partition} gave nothing for {stall_timeout}s at {offset}")
    first = records[0]
    try:
        same = first.offset == offset and registry.from_bytes(first.value).event_id == event_id
    except (UnknownEvent, ValidationError, ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise NotThisLog(f"offset {offset} does not hold event {event_id}, the last one the state folded")


def _reason(error: Exception) -> str:
    if isinstance(error, UnknownEvent):
        return f"unknown event {error} (written by a newer version of the code?)"
    return f"{type(error).__name__}: {error}"
