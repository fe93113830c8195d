"""The state one partition's writer keeps in memory: every aggregate of the partition folded from
the log, the idempotency results, and the numeric-id counters. Pure; no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from command_api.eventstore.errors import ConcurrencyConflict
from command_api.eventstore.model import (
    AggregateKind,
    AggregateRecord,
    CommandContext,
    Committed,
    Decision,
    Loaded,
    Position,
)
from command_api.eventstore.partitioning import ID_STRIDE
from event_schemas.envelope import Event

S = TypeVar("S")


class PartitionState:
    def __init__(self, partition: int, kinds: Sequence[AggregateKind[Any]]) -> None:
        self.partition = partition
        self._kinds = {kind.name: kind for kind in kinds}
        self._records: dict[str, AggregateRecord[Any]] = {}
        self._created: Counter[str] = Counter()
        # The offset of the next record this state has not seen (where a catch-up resumes).
        self.next_offset = 0

    def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        record = self._records.get(aggregate_id)
        state: S = kind.initial if record is None else record.state
        version = 0 if record is None else record.version
        next_id = (self._created[kind.name] + 1) * ID_STRIDE + self.partition
        return Loaded(aggregate_id, state, version, next_id)

    def result_for(self, aggregate_id: str, idempotency_key: str | None) -> Committed | None:
        if idempotency_key is None:
            return None
        record = self._records.get(aggregate_id)
        return None if record is None else record.results.get(idempotency_key)

    def check_append(self, aggregate_id: str, expected_version: int, events: Sequence[Event]) -> None:
        record = self._records.get(aggregate_id)
        actual = 0 if record is None else record.version
        if actual != expected_version:
            raise ConcurrencyConflict(aggregate_id, expected_version, actual)
        for offset, event in enumerate(events, start=1):
            if event.aggregate_id != aggregate_id or event.aggregate_version != expected_version + offset:
                raise ValueError(
                    f"event {event.event_type} must be version {expected_version + offset} "
                    f"of {aggregate_id}, not version {event.aggregate_version} of {event.aggregate_id}"
                )

    def apply(self, event: Event, position: Position) -> None:
        """Fold one committed event; events already folded (replays of our own appends) are skipped."""
        self.next_offset = max(self.next_offset, position.offset + 1)
        kind = self._kinds.get(event.aggregate_type)
        if kind is None:
            return
        record = self._records.get(event.aggregate_id)
        if record is None:
            record = self._records[event.aggregate_id] = AggregateRecord(kind.initial)
        if event.aggregate_version != record.version + 1:
            return
        record.state = kind.evolve(record.state, event)
        record.version = event.aggregate_version
        if event.aggregate_version == 1:
            self._created[kind.name] += 1
        if event.idempotency_key is not None:
            previous = record.results.get(event.idempotency_key)
            events = (previous.events if previous else ()) + (event,)
            record.results[event.idempotency_key] = Committed(events, position, replayed=True)


def stamp(events: Sequence[Event], context: CommandContext) -> list[Event]:
    """Put the command's metadata into each event's envelope."""
    update = {
        "idempotency_key": context.idempotency_key,
        "correlation_id": context.correlation_id,
        "causation_id": context.causation_id,
    }
    return [event.model_copy(update=update) for event in events]


async def decide_and_append(
    state: PartitionState,
    kind: AggregateKind[S],
    aggregate_id: str,
    decide: Decision[S],
    context: CommandContext,
    append: Callable[[Sequence[Event]], Awaitable[Position]],
    expected_version: int | None = None,
) -> Committed:
    """The one flow every store runs, alone in the aggregate's partition: an idempotent retry returns
    the first result; otherwise decide, check the expected version (the loaded one unless given), and
    append. `append` folds the events into `state` once they are durable."""
    previous = state.result_for(aggregate_id, context.idempotency_key)
    if previous is not None:
        return previous
    loaded = state.load(kind, aggregate_id)
    events = stamp(decide(loaded), context)
    if not events:
        return Committed((), None)
    state.check_append(aggregate_id, loaded.version if expected_version is None else expected_version, events)
    return Committed(tuple(events), await append(events))
