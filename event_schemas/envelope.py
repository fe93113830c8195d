"""The common envelope every event carries, and the frozen base class of all events."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Event(BaseModel):
    """A fact that happened to one aggregate; never edited, only superseded by a new schema version.

    Subclasses set `event_type`, `schema_version` and `aggregate_type` and add their payload fields.
    `correlation_id`, `causation_id`, `idempotency_key` and `request_fingerprint` are stamped by the
    event store, not by domain code. The key is already scoped to its caller and route (an opaque
    digest), and the fingerprint is the digest of the request that first used it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str]

    event_id: UUID = Field(default_factory=uuid4)
    aggregate_id: str = Field(min_length=1)
    aggregate_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None


ENVELOPE_FIELDS: frozenset[str] = frozenset(Event.model_fields)


def payload_of(event: Event) -> dict[str, object]:
    """The event's own fields, without the envelope, as JSON-ready values."""
    return event.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))
