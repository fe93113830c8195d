"""An in-memory event store with the same contract as the Kafka one, for unit tests of handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from command_api.eventstore.model import (
    AggregateKind,
    CommandContext,
    Committed,
    Decision,
    Loaded,
    PairDecision,
    PartitionedEventStore,
    Position,
)
from command_api.eventstore.partition_state import Outcome, PartitionState, PendingBatch
from command_api.eventstore.partitioning import partition_for_key, partition_of
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
        self._creations = 0

    def _append(self, state: PartitionState, events: Sequence[Event]) -> dict[UUID, Position]:
        positions = {}
        for event in events:
            position = positions[event.event_id] = Position(self.topic, state.partition, state.next_offset)
            state.apply(event, position)
            self.log.append((position, event))
        return positions

    async def _in_partition(self, partition: int, decide: Callable[[PendingBatch], Outcome]) -> Committed:
        state = self._partitions[partition]
        async with self._locks[partition]:
            batch = PendingBatch(state)
            outcome = decide(batch)
            committed: Committed = outcome(self._append(state, batch.events))
            return committed

    async def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        partition = partition_of(kind, aggregate_id, len(self._partitions))
        return self._partitions[partition].load(kind, aggregate_id)

    async def decide_in_partition(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        decide: Decision[S],
        context: CommandContext,
        expected_version: int | None,
    ) -> Committed:
        return await self._in_partition(
            partition_of(kind, aggregate_id, len(self._partitions)),
            lambda batch: batch.decide(kind, aggregate_id, decide, context, expected_version),
        )

    async def create(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Committed:
        if context.idempotency_key is not None:
            partition = partition_for_key(context.idempotency_key.encode(), len(self._partitions))
        else:
            self._creations += 1
            partition = self._creations % len(self._partitions)
        return await self._in_partition(partition, lambda batch: batch.decide_new(kind, decide, context))

    async def create_beside(
        self,
        anchor: AggregateKind[S],
        anchor_id: str,
        kind: AggregateKind[Any],
        decide: PairDecision[S],
        context: CommandContext,
    ) -> Committed:
        return await self._in_partition(
            partition_of(anchor, anchor_id, len(self._partitions)),
            lambda batch: batch.decide_beside(anchor, anchor_id, kind, decide, context),
        )
