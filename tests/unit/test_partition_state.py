"""The in-memory state of one partition's writer: folding, expected versions, ids, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from command_api.eventstore.errors import ConcurrencyConflict
from command_api.eventstore.model import CommandContext, Position
from command_api.eventstore.partition_state import PartitionState, stamp
from command_api.users import domain
from command_api.users.domain import USER, user_aggregate_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def register(state: PartitionState, email: str, offset: int, key: str | None = None) -> None:
    loaded = state.load(USER, user_aggregate_id(email))
    events = stamp(
        domain.register(loaded, username="u", email=email, password_hash=HASH, role="customer", now=NOW),
        CommandContext(idempotency_key=key),
    )
    state.check_append(loaded.aggregate_id, loaded.version, events)
    for event in events:
        state.apply(event, Position("t", state.partition, offset))


def test_numeric_ids_count_the_aggregates_created_in_the_partition() -> None:
    state = PartitionState(partition=3, kinds=[USER])
    register(state, "a@example.com", offset=0)
    register(state, "b@example.com", offset=2)
    assert state.load(USER, user_aggregate_id("a@example.com")).state.user_id == 1003
    assert state.load(USER, user_aggregate_id("b@example.com")).state.user_id == 2003
    assert state.load(USER, user_aggregate_id("c@example.com")).next_numeric_id == 3003
    assert state.next_offset == 3


def test_an_append_against_a_stale_version_is_a_conflict() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    stale = state.load(USER, user_aggregate_id("a@example.com"))
    register(state, "a@example.com", offset=0)
    events = domain.register(
        stale, username="u", email="a@example.com", password_hash=HASH, role="customer", now=NOW
    )
    with pytest.raises(ConcurrencyConflict):
        state.check_append(stale.aggregate_id, stale.version, events)


def test_a_replayed_event_is_folded_once() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    register(state, "a@example.com", offset=0)
    loaded = state.load(USER, user_aggregate_id("a@example.com"))
    [event] = domain.change_role(loaded, "admin", NOW)
    state.apply(event, Position("t", 0, 1))
    state.apply(event, Position("t", 0, 1))
    assert state.load(USER, loaded.aggregate_id).version == 2


def test_the_result_of_an_idempotent_command_is_remembered_with_its_position() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    register(state, "a@example.com", offset=5, key="k1")
    result = state.result_for(user_aggregate_id("a@example.com"), "k1")
    assert result is not None and result.replayed
    assert result.position == Position("t", 0, 5)
    assert state.result_for(user_aggregate_id("a@example.com"), "other") is None
