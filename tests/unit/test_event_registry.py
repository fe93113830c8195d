"""The wire format: envelope plus payload, type and version in headers, old versions upcast."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from uuid import uuid4

import orjson

from event_schemas.envelope import Event
from event_schemas.registry import REGISTRY, EventRegistry
from event_schemas.users import UserRegistered

EVENT = UserRegistered(
    aggregate_id="user-x",
    aggregate_version=1,
    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    correlation_id=uuid4(),
    idempotency_key="key-1",
    user_id=1001,
    username="ada",
    email="ada@example.com",
    password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    role="customer",
)


def test_an_event_survives_the_round_trip_through_bytes() -> None:
    assert REGISTRY.from_bytes(REGISTRY.to_bytes(EVENT)) == EVENT


def test_the_wire_format_separates_envelope_and_payload() -> None:
    document = orjson.loads(REGISTRY.to_bytes(EVENT))
    assert document["event_type"] == "UserRegistered"
    assert document["schema_version"] == 1
    assert document["aggregate_type"] == "User"
    assert document["payload"]["user_id"] == 1001
    assert "user_id" not in document
    assert dict(REGISTRY.headers(EVENT)) == {"event_type": b"UserRegistered", "schema_version": b"1"}


class NameGivenV1(Event):
    event_type: ClassVar[str] = "NameGiven"
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = "Thing"
    name: str


class NameGivenV2(Event):
    event_type: ClassVar[str] = "NameGiven"
    schema_version: ClassVar[int] = 2
    aggregate_type: ClassVar[str] = "Thing"
    first_name: str
    last_name: str


def test_an_old_schema_version_is_upcast_on_read() -> None:
    old = EventRegistry([NameGivenV1])
    new = EventRegistry([NameGivenV2])

    def split_name(payload: dict[str, object]) -> dict[str, object]:
        first, _, last = str(payload["name"]).partition(" ")
        return {"first_name": first, "last_name": last}

    new.register_upcaster("NameGiven", 1, split_name)
    stored = old.to_bytes(
        NameGivenV1(aggregate_id="t", aggregate_version=1, occurred_at=datetime.now(UTC), name="Ada Lovelace")
    )
    read = new.from_bytes(stored)
    assert isinstance(read, NameGivenV2)
    assert (read.first_name, read.last_name) == ("Ada", "Lovelace")
