"""The event store's port: what a command handler sees, whichever store is behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from event_schemas.envelope import Event

S = TypeVar("S")


@dataclass(frozen=True)
class AggregateKind(Generic[S]):
    """How to fold one type of aggregate: its name, its state before any event, and `evolve`.

    A numbered kind (`id_prefix` set) is identified by a number the store allocates when the aggregate
    is created (`<id_prefix><number>`), and lives in the partition its number names; any other kind
    lives where its id hashes to, or, with `partition_key`, where that key of its id hashes to (an
    aggregate that one command changes together with another lives beside it, in one partition).
    """

    name: str
    initial: S
    evolve: Callable[[S, Event], S]
    id_prefix: str | None = None
    partition_key: Callable[[str], str] | None = None
    # Bump it when the state's shape changes: stores and checkpoints of another version are then
    # ignored (the partition is replayed from the log once, and checkpointed anew).
    state_version: int = 1

    def numbered_id(self, number: int) -> str:
        assert self.id_prefix is not None, f"{self.name} is not a numbered kind"
        return f"{self.id_prefix}{number}"


@dataclass(frozen=True)
class Position:
    """Where an event landed; its string form is the consistency token a query can wait for."""

    topic: str
    partition: int
    offset: int

    @property
    def token(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class Loaded(Generic[S]):
    """An aggregate's current state as its partition's single writer knows it."""

    aggregate_id: str
    state: S
    version: int
    # The numeric id an aggregate created by this decision gets (unique across partitions).
    next_numeric_id: int


@dataclass(frozen=True)
class Committed:
    """The outcome of a command: the events it appended (or, for an idempotent retry, had appended),
    and the aggregate as those events left it, so that a retry answers what the first attempt did."""

    events: tuple[Event, ...]
    position: Position | None
    replayed: bool = False
    state: Any = None
    version: int = 0
    # The digest of the request that first used the idempotency key (None without a key).
    fingerprint: str | None = None


@dataclass(frozen=True)
class CommandContext:
    """Metadata that travels with the command into every event's envelope."""

    # Scoped to the caller and the route (see command_api/idempotency.py), with the request's digest.
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None


@dataclass
class AggregateRecord(Generic[S]):
    state: S
    version: int = 0


Decision = Callable[[Loaded[S]], Sequence[Event]]
# A decision over an existing aggregate and a new numbered one created beside it, in its partition.
PairDecision = Callable[[Loaded[S], Loaded[Any]], tuple[Sequence[Event], Sequence[Event]]]


class EventStore(Protocol):
    async def execute(
        self, kind: AggregateKind[S], aggregate_id: str, decide: Decision[S], context: CommandContext
    ) -> Committed:
        """Load the aggregate, decide, and append atomically; decisions for one aggregate never overlap."""
        ...

    async def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        """The aggregate as its writer knows it now (for reads that must not lag, like login)."""
        ...

    async def peek(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        """The aggregate as its writer has folded it, without proving first that the writer still owns
        the partition (`load` costs a Kafka transaction). Only for a read that a state lagging the log
        (a writer fenced a moment ago) cannot mislead: one ahead of a decision that checks again what
        it relies on when it commits, or one whose caller is safe with an earlier state (an order's
        status only moves on: the saga's placement check, `OrdersHandlers.order`)."""
        ...

    async def append(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        expected_version: int,
        events: Sequence[Event],
        context: CommandContext,
    ) -> Committed:
        """Append if the aggregate is still at `expected_version`, else raise ConcurrencyConflict."""
        ...

    async def create(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Committed:
        """Create an aggregate of a numbered kind in a partition the store picks."""
        ...

    async def create_beside(
        self,
        anchor: AggregateKind[S],
        anchor_id: str,
        kind: AggregateKind[Any],
        decide: PairDecision[S],
        context: CommandContext,
    ) -> Committed:
        """Decide over `anchor_id` and a new aggregate of the numbered `kind` in the anchor's partition,
        and append both in one transaction (the outcome's state is the anchor's)."""
        ...


class PartitionedEventStore(ABC):
    """Both stores: `execute` and `append` are one operation run alone in the aggregate's partition."""

    @abstractmethod
    async def create(self, kind: AggregateKind[S], decide: Decision[S], context: CommandContext) -> Committed:
        """Create an aggregate of a numbered kind: the store picks its partition and its number (a
        retry with the same idempotency key finds the aggregate it created)."""

    @abstractmethod
    async def create_beside(
        self,
        anchor: AggregateKind[S],
        anchor_id: str,
        kind: AggregateKind[Any],
        decide: PairDecision[S],
        context: CommandContext,
    ) -> Committed:
        """Both sets of events commit together, or neither does."""

    @abstractmethod
    async def load(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]: ...

    async def peek(self, kind: AggregateKind[S], aggregate_id: str) -> Loaded[S]:
        return await self.load(kind, aggregate_id)

    @abstractmethod
    async def decide_in_partition(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        decide: Decision[S],
        context: CommandContext,
        expected_version: int | None,
    ) -> Committed:
        """Decide against the aggregate (checking `expected_version` when given) and append."""

    async def execute(
        self, kind: AggregateKind[S], aggregate_id: str, decide: Decision[S], context: CommandContext
    ) -> Committed:
        return await self.decide_in_partition(kind, aggregate_id, decide, context, None)

    async def append(
        self,
        kind: AggregateKind[S],
        aggregate_id: str,
        expected_version: int,
        events: Sequence[Event],
        context: CommandContext,
    ) -> Committed:
        return await self.decide_in_partition(kind, aggregate_id, lambda _: events, context, expected_version)
