"""The state one partition's writer keeps in memory: every aggregate of the partition folded from
the log, the idempotency results, and the numeric-id counters; and the batch in which several
commands are decided before one commit. Pure; no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

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

# What a decision turns into once its batch is committed: given where each event landed, the answer.
Outcome = Callable[[Mapping[UUID, Position]], Any]


class PartitionState:
    def __init__(self, partition: int, kinds: Sequence[AggregateKind[Any]]) -> None:
        self.partition = partition
        self.kinds = {kind.name: kind for kind in kinds}
        self._records: dict[str, AggregateRecord[Any]] = {}
        self._created: Counter[str] = Counter()
        # (kind, idempotency key) -> the aggregate a creation command with that key created.
        self._created_by_key: dict[tuple[str, str], str] = {}
        # The offset of the next record this state has not seen (where a catch-up resumes).
        self.next_offset = 0

    def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        record = self._records.get(aggregate_id)
        state: S = kind.initial if record is None else record.state
        version = 0 if record is None else record.version
        return Loaded(aggregate_id, state, version, self.numeric_id(kind, self._created[kind.name] + 1))

    def numeric_id(self, kind: AggregateKind[Any], nth: int) -> int:
        """The id of the nth aggregate of `kind` created in this partition."""
        return nth * ID_STRIDE + self.partition

    def created(self, kind: AggregateKind[Any]) -> int:
        return self._created[kind.name]

    def created_with_key(self, kind: AggregateKind[Any], idempotency_key: str) -> str | None:
        return self._created_by_key.get((kind.name, idempotency_key))

    def result_for(self, aggregate_id: str, idempotency_key: str | None) -> Committed | None:
        if idempotency_key is None:
            return None
        record = self._records.get(aggregate_id)
        return None if record is None else record.results.get(idempotency_key)

    def apply(self, event: Event, position: Position) -> None:
        """Fold one committed event; events already folded (replays of our own appends) are skipped."""
        self.next_offset = max(self.next_offset, position.offset + 1)
        kind = self.kinds.get(event.aggregate_type)
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
                self._created_by_key[(kind.name, event.idempotency_key)] = event.aggregate_id
        if event.idempotency_key is not None:
            previous = record.results.get(event.idempotency_key)
            events = (previous.events if previous else ()) + (event,)
            record.results[event.idempotency_key] = Committed(events, position, replayed=True)


class PendingBatch:
    """Commands decided together before one Kafka transaction (group commit). Each decision sees the
    ones before it in the batch; nothing reaches the partition's state until the batch is committed,
    so a failed commit leaves the state as the log has it."""

    def __init__(self, base: PartitionState) -> None:
        self.base = base
        self.events: list[Event] = []
        self._aggregates: dict[str, tuple[Any, int]] = {}  # aggregate id -> (state, version)
        self._created: Counter[str] = Counter()
        self._results: dict[tuple[str, str], tuple[Event, ...]] = {}
        self._created_by_key: dict[tuple[str, str], str] = {}

    def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        committed = self.base.load(kind, aggregate_id)
        state, version = self._aggregates.get(aggregate_id, (committed.state, committed.version))
        nth = self.base.created(kind) + self._created[kind.name] + 1
        return Loaded(aggregate_id, state, version, self.base.numeric_id(kind, nth))

    def decide(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        decide: Decision[S],
        context: CommandContext,
        expected_version: int | None = None,
    ) -> Outcome:
        """Decide one command into the batch. An idempotent retry answers with the first result; the
        expected version is the loaded one unless given."""
        key = context.idempotency_key
        previous = self.base.result_for(aggregate_id, key)
        if previous is not None:
            return lambda _: previous
        if key is not None and (aggregate_id, key) in self._results:
            earlier = self._results[(aggregate_id, key)]
            return lambda positions: Committed(earlier, positions[earlier[-1].event_id], replayed=True)
        loaded = self.load(kind, aggregate_id)
        events = tuple(stamp(decide(loaded), context))
        if not events:
            return lambda _: Committed((), None)
        expected = loaded.version if expected_version is None else expected_version
        check_versions(aggregate_id, expected, loaded.version, events)
        state = loaded.state
        for event in events:
            state = kind.evolve(state, event)
        self._aggregates[aggregate_id] = (state, events[-1].aggregate_version)
        if loaded.version == 0:
            self._created[kind.name] += 1
        if key is not None:
            self._results[(aggregate_id, key)] = events
        self.events.extend(events)
        return lambda positions: Committed(events, positions[events[-1].event_id])

    def decide_new(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Outcome:
        """Decide the creation of a numbered aggregate with the partition's next number. A retry with the
        same idempotency key lands on the aggregate the first attempt created."""
        key = context.idempotency_key
        if key is not None:
            created = self.base.created_with_key(kind, key) or self._created_by_key.get((kind.name, key))
            if created is not None:
                return self.decide(kind, created, decide, context)
        nth = self.base.created(kind) + self._created[kind.name] + 1
        aggregate_id = kind.numbered_id(self.base.numeric_id(kind, nth))
        outcome = self.decide(kind, aggregate_id, decide, context, expected_version=0)
        if key is not None:
            self._created_by_key[(kind.name, key)] = aggregate_id
        return outcome


def check_versions(aggregate_id: str, expected: int, actual: int, events: Sequence[Event]) -> None:
    if actual != expected:
        raise ConcurrencyConflict(aggregate_id, expected, actual)
    for offset, event in enumerate(events, start=1):
        if event.aggregate_id != aggregate_id or event.aggregate_version != expected + offset:
            raise ValueError(
                f"event {event.event_type} must be version {expected + offset} "
                f"of {aggregate_id}, not version {event.aggregate_version} of {event.aggregate_id}"
            )


def stamp(events: Sequence[Event], context: CommandContext) -> list[Event]:
    """Put the command's metadata into each event's envelope."""
    update = {
        "idempotency_key": context.idempotency_key,
        "correlation_id": context.correlation_id,
        "causation_id": context.causation_id,
    }
    return [event.model_copy(update=update) for event in events]
