"""Committing a pending batch into a partition's state without Kafka, for the pure event-store tests."""

from __future__ import annotations

from uuid import UUID

from command_api.eventstore.model import Position
from command_api.eventstore.partition_state import PartitionState, PendingBatch


def commit(state: PartitionState, batch: PendingBatch) -> dict[UUID, Position]:
    """Fold the batch's events at the partition's next offsets, as the writer does after a commit."""
    positions = {}
    for event in batch.events:
        positions[event.event_id] = position = Position("t", state.partition, state.next_offset)
        state.apply(event, position)
    return positions
