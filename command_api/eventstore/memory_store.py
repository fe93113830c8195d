"""An in-memory event store with the same contract as the Kafka one, for unit tests of handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import UUID

from command_api.eventstore.model import (
    AggregateKind,
    CommandContext,
    Committed,
    Decision,
    Loaded,
    PartitionedEventStore,
    Position,
)
from command_api.eventstore.partition_state import PartitionState, PendingBatch
from command_api.eventstore.partitioning import partition_for_key
from event_schemas.envelope import Event

S = TypeVar("S")


class InMemoryEventStore(PartitionedEventStore):
    def __init__(
        self, kinds: Sequence[AggregateKind[Any]], partitions: int = 6, topic: str = "memory"
    ) -> None:
        self.topic = topic
        self._partitions = [PartitionState(p, kinds) for p in range(partitions)]
        self._locks = [asyncio.Lock() for _ in range(partitions)]
        self.log: list[tuple[Position, Event]] = []

    def _partition(self, aggregate_id: str) -> int:
        return partition_for_key(aggregate_id.encode(), len(self._partitions))

    def _append(self, state: PartitionState, events: Sequence[Event]) -> dict[UUID, Position]:
        positions = {}
        for event in events:
            position = positions[event.event_id] = Position(self.topic, state.partition, state.next_offset)
            state.apply(event, position)
            self.log.append((position, event))
        return positions

    async def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        return self._partitions[self._partition(aggregate_id)].load(kind, aggregate_id)

    async def decide_in_partition(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        decide: Decision[S],
        context: CommandContext,
        expected_version: int | None,
    ) -> Committed:
        partition = self._partition(aggregate_id)
        state = self._partitions[partition]
        async with self._locks[partition]:
            batch = PendingBatch(state)
            outcome = batch.decide(kind, aggregate_id, decide, context, expected_version)
            committed: Committed = outcome(self._append(state, batch.events))
            return committed
