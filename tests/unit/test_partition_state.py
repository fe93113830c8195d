"""The in-memory state of one partition's writer: folding, batches, expected versions, ids, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from command_api.eventstore.errors import ConcurrencyConflict, IdempotencyKeyReused
from command_api.eventstore.model import CommandContext, Committed, Decision, Position
from command_api.eventstore.partition_state import KEY_WINDOW, PartitionState, PendingBatch
from command_api.users import domain
from command_api.users.domain import USER, UserState, user_aggregate_id
from event_schemas.users import UserRegistered
from tests.support.folding import commit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def registration(email: str) -> Decision[UserState]:
    return lambda user: domain.register(
        user, username="u", email=email, password_hash=HASH, role="customer", now=NOW
    )


def register(state: PartitionState, email: str, key: str | None = None) -> Committed:
    batch = PendingBatch(state)
    outcome = batch.decide(
        USER, user_aggregate_id(email), registration(email), CommandContext(idempotency_key=key)
    )
    committed: Committed = outcome(commit(state, batch))
    return committed


def test_numeric_ids_count_the_aggregates_created_in_the_partition() -> None:
    state = PartitionState(partition=3, kinds=[USER])
    register(state, "a@example.com")
    register(state, "b@example.com")
    assert state.load(USER, user_aggregate_id("a@example.com")).state.user_id == 1003
    assert state.load(USER, user_aggregate_id("b@example.com")).state.user_id == 2003
    assert state.load(USER, user_aggregate_id("c@example.com")).next_numeric_id == 3003
    assert state.next_offset == 2


def test_decisions_in_one_batch_see_each_other_before_the_commit() -> None:
    state = PartitionState(partition=1, kinds=[USER])
    batch = PendingBatch(state)
    first = batch.decide(
        USER, user_aggregate_id("a@example.com"), registration("a@example.com"), CommandContext()
    )
    with pytest.raises(domain.EmailAlreadyRegistered):
        batch.decide(
            USER, user_aggregate_id("a@example.com"), registration("a@example.com"), CommandContext()
        )
    other = batch.decide(
        USER, user_aggregate_id("b@example.com"), registration("b@example.com"), CommandContext()
    )
    assert state.load(USER, user_aggregate_id("a@example.com")).version == 0  # nothing before the commit
    positions = commit(state, batch)
    events = first(positions).events + other(positions).events
    ids = [event.user_id for event in events if isinstance(event, UserRegistered)]
    assert ids == [1001, 2001]


def test_a_batch_that_is_never_committed_leaves_the_state_untouched() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    batch = PendingBatch(state)
    batch.decide(USER, user_aggregate_id("a@example.com"), registration("a@example.com"), CommandContext())
    assert state.load(USER, user_aggregate_id("a@example.com")).version == 0
    assert state.load(USER, user_aggregate_id("z@example.com")).next_numeric_id == 1000


def test_an_append_against_a_stale_version_is_a_conflict() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    stale = state.load(USER, user_aggregate_id("a@example.com"))
    register(state, "a@example.com")
    events = domain.register(
        stale, username="u", email="a@example.com", password_hash=HASH, role="customer", now=NOW
    )
    with pytest.raises(ConcurrencyConflict):
        PendingBatch(state).decide(
            USER, stale.aggregate_id, lambda _: events, CommandContext(), expected_version=0
        )


def test_a_replayed_event_is_folded_once() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    register(state, "a@example.com")
    loaded = state.load(USER, user_aggregate_id("a@example.com"))
    [event] = domain.change_role(loaded, "admin", NOW)
    state.apply(event, Position("t", 0, 1))
    state.apply(event, Position("t", 0, 1))
    assert state.load(USER, loaded.aggregate_id).version == 2


def test_the_result_of_an_idempotent_command_is_remembered_with_its_position() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    first = register(state, "a@example.com", key="k1")
    again = register(state, "a@example.com", key="k1")
    assert again.replayed and again.events == first.events and again.position == first.position
    assert state.result_for(user_aggregate_id("a@example.com"), "other") is None


def test_the_same_idempotency_key_twice_in_one_batch_appends_once() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    batch = PendingBatch(state)
    context = CommandContext(idempotency_key="k")
    first = batch.decide(USER, user_aggregate_id("a@example.com"), registration("a@example.com"), context)
    second = batch.decide(USER, user_aggregate_id("a@example.com"), registration("a@example.com"), context)
    positions = commit(state, batch)
    assert len(batch.events) == 1
    assert second(positions).replayed and second(positions).events == first(positions).events


def test_a_key_is_forgotten_once_the_window_has_passed_so_memory_holds_one_window_of_keys() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    register(state, "old@example.com", key="k-old")
    assert state.keys_remembered() == 1
    later = NOW + KEY_WINDOW + timedelta(seconds=1)
    batch = PendingBatch(state)
    outcome = batch.decide(
        USER,
        user_aggregate_id("new@example.com"),
        lambda user: domain.register(
            user, username="u", email="new@example.com", password_hash=HASH, role="customer", now=later
        ),
        CommandContext(idempotency_key="k-new"),
    )
    outcome(commit(state, batch))
    assert state.keys_remembered() == 1
    assert state.result_for(user_aggregate_id("old@example.com"), "k-old") is None
    assert state.result_for(user_aggregate_id("new@example.com"), "k-new") is not None


def test_the_same_key_with_another_request_is_refused() -> None:
    state = PartitionState(partition=0, kinds=[USER])
    first = CommandContext(idempotency_key="k", request_fingerprint="first")
    batch = PendingBatch(state)
    batch.decide(USER, user_aggregate_id("a@example.com"), registration("a@example.com"), first)(
        commit(state, batch)
    )
    again = PendingBatch(state)
    replay = again.decide(USER, user_aggregate_id("a@example.com"), registration("a@example.com"), first)({})
    assert replay.replayed
    with pytest.raises(IdempotencyKeyReused):
        PendingBatch(state).decide(
            USER,
            user_aggregate_id("a@example.com"),
            registration("a@example.com"),
            CommandContext(idempotency_key="k", request_fingerprint="second"),
        )
