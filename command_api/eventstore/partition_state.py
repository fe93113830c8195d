"""The state one partition's writer keeps in memory: every aggregate of the partition folded from
the log, the idempotency results, and the numeric-id counters; and the batch in which several
commands are decided before one commit. Pure; no I/O.

Idempotency results are kept for `KEY_WINDOW` after the command that used the key (by the events'
time, so a replay of the log forgets exactly what the live writer forgot): memory grows with the keys
of one window, not with every key ever sent.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from command_api.eventstore.errors import ConcurrencyConflict, IdempotencyKeyReused, UnknownAggregate
from command_api.eventstore.model import (
    AggregateKind,
    AggregateRecord,
    CommandContext,
    Committed,
    Decision,
    Loaded,
    PairDecision,
    Position,
)
from command_api.eventstore.partitioning import ID_STRIDE
from event_schemas.envelope import Event

S = TypeVar("S")

# What a decision turns into once its batch is committed: given where each event landed, the answer.
Outcome = Callable[[Mapping[UUID, Position]], Any]

# How long a retry with the same idempotency key answers with the first result (Stripe keeps 24 h).
KEY_WINDOW = timedelta(hours=24)


@dataclass
class PartitionImage:
    """Everything a partition's state knows, without its fold functions: what a snapshot holds."""

    partition: int
    next_offset: int
    records: dict[str, AggregateRecord[Any]]
    created: Counter[str]
    created_by_key: dict[tuple[str, str], str]
    keys_by_age: deque[tuple[datetime, str, str, str]]


class PartitionState:
    def __init__(self, partition: int, kinds: Sequence[AggregateKind[Any]]) -> None:
        self.partition = partition
        self.kinds = {kind.name: kind for kind in kinds}
        self._records: dict[str, AggregateRecord[Any]] = {}
        self._created: Counter[str] = Counter()
        # (kind, idempotency key) -> the aggregate a creation command with that key created.
        self._created_by_key: dict[tuple[str, str], str] = {}
        # Keys in the order they were first used, to forget them once out of the window.
        self._keys_by_age: deque[tuple[datetime, str, str, str]] = deque()
        # The offset of the next record this state has not seen (where a catch-up resumes).
        self.next_offset = 0

    def image(self) -> PartitionImage:
        """The state as data (sharing its structures: serialize it before the next event is folded)."""
        return PartitionImage(
            self.partition,
            self.next_offset,
            self._records,
            self._created,
            self._created_by_key,
            self._keys_by_age,
        )

    @classmethod
    def from_image(cls, image: PartitionImage, kinds: Sequence[AggregateKind[Any]]) -> PartitionState:
        state = cls(image.partition, kinds)
        state.next_offset = image.next_offset
        state._records = image.records
        state._created = image.created
        state._created_by_key = image.created_by_key
        state._keys_by_age = image.keys_by_age
        return state

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

    def keys_remembered(self) -> int:
        return len(self._keys_by_age)

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
        key = event.idempotency_key
        if event.aggregate_version == 1:
            self._created[kind.name] += 1
            if key is not None:
                self._created_by_key[(kind.name, key)] = event.aggregate_id
        if key is not None:
            previous = record.results.get(key)
            if previous is None:
                self._keys_by_age.append((event.occurred_at, kind.name, event.aggregate_id, key))
            events = (previous.events if previous else ()) + (event,)
            record.results[key] = Committed(
                events,
                position,
                replayed=True,
                state=record.state,
                version=record.version,
                fingerprint=event.request_fingerprint,
            )
        self._forget_keys_before(event.occurred_at - KEY_WINDOW)

    def _forget_keys_before(self, cutoff: datetime) -> None:
        while self._keys_by_age and self._keys_by_age[0][0] < cutoff:
            _, kind_name, aggregate_id, key = self._keys_by_age.popleft()
            record = self._records.get(aggregate_id)
            if record is not None:
                record.results.pop(key, None)
            if self._created_by_key.get((kind_name, key)) == aggregate_id:
                del self._created_by_key[(kind_name, key)]


class PendingBatch:
    """Commands decided together before one Kafka transaction (group commit). Each decision sees the
    ones before it in the batch; nothing reaches the partition's state until the batch is committed,
    so a failed commit leaves the state as the log has it."""

    def __init__(self, base: PartitionState) -> None:
        self.base = base
        self.events: list[Event] = []
        self._aggregates: dict[str, tuple[Any, int]] = {}  # aggregate id -> (state, version)
        self._created: Counter[str] = Counter()
        self._results: dict[tuple[str, str], tuple[tuple[Event, ...], Any, int]] = {}
        self._created_by_key: dict[tuple[str, str], str] = {}

    def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        committed = self.base.load(kind, aggregate_id)
        state, version = self._aggregates.get(aggregate_id, (committed.state, committed.version))
        nth = self.base.created(kind) + self._created[kind.name] + 1
        return Loaded(aggregate_id, state, version, self.base.numeric_id(kind, nth))

    def _replay(self, aggregate_id: str, context: CommandContext) -> Outcome | None:
        """The first result of a command retried with the same key, if any; the same key with
        another request is refused."""
        key = context.idempotency_key
        if key is None:
            return None
        previous = self.base.result_for(aggregate_id, key)
        if previous is not None:
            _same_request(previous.fingerprint, context)
            return lambda _: previous
        if (aggregate_id, key) in self._results:
            earlier, state, version = self._results[(aggregate_id, key)]
            _same_request(earlier[-1].request_fingerprint, context)
            return lambda positions: Committed(
                earlier,
                positions[earlier[-1].event_id],
                replayed=True,
                state=state,
                version=version,
                fingerprint=earlier[-1].request_fingerprint,
            )
        return None

    def decide(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        decide: Decision[S],
        context: CommandContext,
        expected_version: int | None = None,
        *,
        creating: bool = False,
    ) -> Outcome:
        """Decide one command into the batch. An idempotent retry answers with the first result; the
        expected version is the loaded one unless given. A numbered aggregate comes into being only
        through `decide_new` (its number is allocated there), never as a side effect of a command."""
        replay = self._replay(aggregate_id, context)
        if replay is not None:
            return replay
        loaded = self.load(kind, aggregate_id)
        if kind.id_prefix is not None and loaded.version == 0 and not creating:
            raise UnknownAggregate(f"no {kind.name} has id {aggregate_id}")
        events = tuple(stamp(decide(loaded), context))
        if not events:
            return lambda _: Committed((), None, state=loaded.state, version=loaded.version)
        expected = loaded.version if expected_version is None else expected_version
        state, version = self._stage(kind, loaded, expected, events, context)
        return lambda positions: Committed(
            events,
            positions[events[-1].event_id],
            state=state,
            version=version,
            fingerprint=context.request_fingerprint,
        )

    def decide_new(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Outcome:
        """Decide the creation of a numbered aggregate with the partition's next number. A retry with the
        same idempotency key lands on the aggregate the first attempt created."""
        key = context.idempotency_key
        if key is not None:
            created = self.base.created_with_key(kind, key) or self._created_by_key.get((kind.name, key))
            if created is not None:
                return self.decide(kind, created, decide, context)
        aggregate_id = self._next_id(kind)
        outcome = self.decide(kind, aggregate_id, decide, context, expected_version=0, creating=True)
        if key is not None:
            self._created_by_key[(kind.name, key)] = aggregate_id
        return outcome

    def decide_beside(
        self,
        anchor: AggregateKind[S],
        anchor_id: str,
        kind: AggregateKind[Any],
        decide: PairDecision[S],
        context: CommandContext,
    ) -> Outcome:
        """One decision over an existing aggregate and a new numbered one in the same partition (a cart
        and the order it becomes): both sets of events go into this batch's transaction, or neither."""
        replay = self._replay(anchor_id, context)
        if replay is not None:
            return replay
        loaded = self.load(anchor, anchor_id)
        new = self.load(kind, self._next_id(kind))
        anchor_events, new_events = (tuple(stamp(events, context)) for events in decide(loaded, new))
        if not anchor_events:
            if new_events:
                raise ValueError(f"a new {kind.name} needs events on {anchor_id} as well")
            return lambda _: Committed((), None, state=loaded.state, version=loaded.version)
        check_versions(new.aggregate_id, 0, new.version, new_events)
        state, version = self._stage(anchor, loaded, loaded.version, anchor_events, context)
        if new_events:
            self._stage(kind, new, 0, new_events, context)
        events = anchor_events + new_events
        return lambda positions: Committed(
            events,
            positions[events[-1].event_id],
            state=state,
            version=version,
            fingerprint=context.request_fingerprint,
        )

    def _next_id(self, kind: AggregateKind[Any]) -> str:
        nth = self.base.created(kind) + self._created[kind.name] + 1
        return kind.numbered_id(self.base.numeric_id(kind, nth))

    def _stage(
        self,
        kind: AggregateKind[S],
        loaded: Loaded[S],
        expected: int,
        events: tuple[Event, ...],
        context: CommandContext,
    ) -> tuple[S, int]:
        """Check the versions, fold the events into the batch's view, and queue them."""
        check_versions(loaded.aggregate_id, expected, loaded.version, events)
        state = loaded.state
        for event in events:
            state = kind.evolve(state, event)
        version = events[-1].aggregate_version
        self._aggregates[loaded.aggregate_id] = (state, version)
        if loaded.version == 0:
            self._created[kind.name] += 1
        if context.idempotency_key is not None:
            self._results[(loaded.aggregate_id, context.idempotency_key)] = (events, state, version)
        self.events.extend(events)
        return state, version


def _same_request(first_fingerprint: str | None, context: CommandContext) -> None:
    if first_fingerprint != context.request_fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request; use a new key for a new request"
        )


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
        "request_fingerprint": context.request_fingerprint,
        "correlation_id": context.correlation_id,
        "causation_id": context.causation_id,
    }
    return [event.model_copy(update=update) for event in events]
