"""Given events, when a command, then events: the User aggregate's rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from command_api.eventstore.model import Loaded
from command_api.users import domain
from command_api.users.domain import USER, UserState, user_aggregate_id
from event_schemas.users import UserPasswordRehashed, UserRegistered, UserSessionsRevoked

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def fresh(email: str = "Ada@Example.com") -> Loaded[UserState]:
    return Loaded(user_aggregate_id(email), USER.initial, 0, next_numeric_id=7003)


def test_registering_a_new_email_records_the_user_with_the_allocated_id() -> None:
    [event] = domain.register(
        fresh(), username="ada", email="Ada@Example.com", password_hash=HASH, role="customer", now=NOW
    )
    assert isinstance(event, UserRegistered)
    assert (event.user_id, event.email, event.aggregate_version) == (7003, "ada@example.com", 1)


def test_registering_an_email_twice_is_refused() -> None:
    loaded = fresh()
    [event] = domain.register(
        loaded, username="ada", email="ada@example.com", password_hash=HASH, role="customer", now=NOW
    )
    registered = Loaded(loaded.aggregate_id, USER.evolve(loaded.state, event), 1, 8003)
    with pytest.raises(domain.EmailAlreadyRegistered):
        domain.register(
            registered, username="eve", email="ADA@example.com", password_hash=HASH, role="customer", now=NOW
        )


def test_emails_that_differ_only_in_case_are_one_aggregate() -> None:
    assert user_aggregate_id(" Ada@Example.COM ") == user_aggregate_id("ada@example.com")


def test_the_password_itself_can_never_be_recorded() -> None:
    with pytest.raises(ValueError, match="password_hash"):
        UserRegistered(
            aggregate_id="user-1",
            aggregate_version=1,
            occurred_at=NOW,
            user_id=1,
            username="ada",
            email="ada@example.com",
            password_hash="plain text",
            role="customer",
        )


def test_changing_to_the_same_role_appends_nothing() -> None:
    loaded = fresh()
    [event] = domain.register(
        loaded, username="ada", email="a@b.co", password_hash=HASH, role="admin", now=NOW
    )
    registered = Loaded(loaded.aggregate_id, USER.evolve(loaded.state, event), 1, 0)
    assert domain.change_role(registered, "admin", NOW) == []
    [changed] = domain.change_role(registered, "customer", NOW)
    assert USER.evolve(registered.state, changed).role == "customer"


def test_revoking_a_users_sessions_is_recorded_every_time_and_changes_nothing_else() -> None:
    loaded = fresh()
    [event] = domain.register(
        loaded, username="ada", email="a@b.co", password_hash=HASH, role="admin", now=NOW
    )
    registered = Loaded(loaded.aggregate_id, USER.evolve(loaded.state, event), 1, 0)
    [revoked] = domain.revoke_sessions(registered, NOW)
    assert isinstance(revoked, UserSessionsRevoked)
    assert (revoked.user_id, revoked.aggregate_version) == (7003, 2)
    assert USER.evolve(registered.state, revoked) == registered.state
    again = Loaded(loaded.aggregate_id, registered.state, 2, 0)
    assert [e.aggregate_version for e in domain.revoke_sessions(again, NOW)] == [3]


def test_revoking_the_sessions_of_an_unknown_user_is_refused() -> None:
    with pytest.raises(domain.UnknownUser):
        domain.revoke_sessions(fresh(), NOW)


def test_a_password_is_rehashed_once_against_the_hash_the_login_checked() -> None:
    loaded = fresh()
    [registered] = domain.register(
        loaded, username="ada", email="ada@example.com", password_hash=HASH, role="customer", now=NOW
    )
    user = Loaded(loaded.aggregate_id, USER.evolve(loaded.state, registered), 1, 8003)
    newer = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
    [rehashed] = domain.rehash_password(user, old_hash=HASH, new_hash=newer, now=NOW)
    assert isinstance(rehashed, UserPasswordRehashed)
    after = Loaded(user.aggregate_id, USER.evolve(user.state, rehashed), 2, 8003)
    assert after.state.password_hash == newer
    # A second login that checked the old hash at the same time decides nothing.
    assert domain.rehash_password(after, old_hash=HASH, new_hash=newer, now=NOW) == []
    assert domain.rehash_password(fresh(), old_hash=HASH, new_hash=newer, now=NOW) == []
