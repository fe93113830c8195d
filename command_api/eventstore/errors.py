"""What the event store can refuse, in the domain's terms."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base of the event store's errors."""


class ConcurrencyConflict(EventStoreError):
    """The aggregate moved on since it was loaded: the expected version is no longer current."""

    def __init__(self, aggregate_id: str, expected: int, actual: int) -> None:
        super().__init__(f"aggregate {aggregate_id} is at version {actual}, not {expected}")
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class EventStoreUnavailable(EventStoreError):
    """Kafka did not acknowledge in time, or this instance is still catching up; nothing was appended
    unless a retry with the same idempotency key says otherwise."""


class UnknownAggregate(EventStoreError):
    """An id that no aggregate of the kind can have (it names no partition)."""


class NotOwner(EventStoreError):
    """Another instance owns the aggregate's partition; `owner_url` is where to send the command."""

    def __init__(self, partition: int, owner_url: str | None) -> None:
        super().__init__(f"partition {partition} is owned by {owner_url or 'no known instance'}")
        self.partition = partition
        self.owner_url = owner_url


class IdempotencyKeyReused(EventStoreError):
    """The caller sent an idempotency key again with a different request: it names the first one."""
