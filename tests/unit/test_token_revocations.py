"""The revocations view: which genuine, unexpired tokens no longer count, folded from the users topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.revocations import CLOCK_SKEW_SECONDS, Revocations
from auth.tokens import Claims, InvalidToken, Role, TokenIssuer, TokenRevoked, TokenVerifier
from event_schemas.envelope import Event
from event_schemas.users import Role as UserRole
from event_schemas.users import UserRegistered, UserRoleChanged, UserSessionsRevoked

NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
TTL, STALE_AFTER = 3600.0, 30.0
ADA = 1003


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(NOW + seconds, UTC)


def role_changed(version: int, role: UserRole = "customer", user_id: int = ADA, when: float = 0) -> Event:
    return UserRoleChanged(
        aggregate_id=f"user-{user_id}",
        aggregate_version=version,
        occurred_at=at(when),
        user_id=user_id,
        role=role,
    )


def sessions_revoked(version: int, user_id: int = ADA, when: float = 0) -> Event:
    return UserSessionsRevoked(
        aggregate_id=f"user-{user_id}", aggregate_version=version, occurred_at=at(when), user_id=user_id
    )


def claims(version: int, role: Role = "admin", user_id: int = ADA, issued: float = -60) -> Claims:
    return Claims(
        user_id=user_id,
        email="ada@example.com",
        role=role,
        issued_at=int(NOW + issued),
        expires_at=int(NOW + issued + TTL),
        user_version=version,
    )


def confirmed_view(*events: Event) -> Revocations:
    """A view that has read the topic to its end just now."""
    view = Revocations(token_ttl=TTL, stale_after=STALE_AFTER)
    for event in events:
        view.apply(event)
    view.confirm(NOW)
    return view


def test_a_role_change_ends_the_tokens_issued_before_it_and_not_those_of_a_later_login() -> None:
    view = confirmed_view(role_changed(version=2))
    assert view.refusal(claims(version=1), NOW) is not None
    assert view.refusal(claims(version=2, role="customer"), NOW) is None
    assert view.refusal(claims(version=5, role="customer"), NOW) is None


def test_revoking_sessions_ends_the_tokens_issued_before_it() -> None:
    view = confirmed_view(role_changed(version=2, role="admin"), sessions_revoked(version=3))
    assert view.refusal(claims(version=2), NOW) is not None
    assert view.refusal(claims(version=3), NOW) is None


def test_events_that_revoke_nothing_and_other_users_tokens_are_left_alone() -> None:
    registered = UserRegistered(
        aggregate_id="user-2003",
        aggregate_version=1,
        occurred_at=at(0),
        user_id=2003,
        username="bob",
        email="bob@example.com",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        role="customer",
    )
    view = confirmed_view(registered, role_changed(version=4))
    assert len(view) == 1
    assert view.refusal(claims(version=1, user_id=2003, role="customer"), NOW) is None
    assert view.refusal(claims(version=0, user_id=4003), NOW) is None


def test_reading_an_event_again_or_an_older_one_never_lowers_the_bar() -> None:
    view = confirmed_view(role_changed(version=5), role_changed(version=3), role_changed(version=5))
    assert view.refusal(claims(version=4), NOW) is not None


def test_a_token_without_a_version_counts_as_issued_before_any_change() -> None:
    view = confirmed_view(role_changed(version=2))
    assert view.refusal(claims(version=0), NOW) is not None


def test_a_service_token_is_never_refused_even_by_a_view_that_never_confirmed() -> None:
    view = Revocations(token_ttl=TTL, stale_after=STALE_AFTER)
    assert view.refusal(claims(version=0, role="service", user_id=0, issued=-3000), NOW) is None


def test_a_view_that_cannot_confirm_refuses_admin_tokens_older_than_its_bound_and_only_those() -> None:
    view = Revocations(token_ttl=TTL, stale_after=STALE_AFTER)
    view.confirm(NOW - STALE_AFTER - 1)  # the last time it heard the topic's end
    assert view.refusal(claims(version=1, role="admin", issued=-STALE_AFTER - 1), NOW) is not None
    assert view.refusal(claims(version=1, role="admin", issued=-5), NOW) is None
    assert view.refusal(claims(version=1, role="customer", issued=-3000), NOW) is None
    view.confirm(NOW - 1)
    assert view.refusal(claims(version=1, role="admin", issued=-3000), NOW) is None


def test_a_starting_view_counts_as_stale_until_its_first_confirmation() -> None:
    view = Revocations(token_ttl=TTL, stale_after=STALE_AFTER)
    assert view.refusal(claims(version=1, issued=-STALE_AFTER - 1), NOW) is not None
    view.confirm(NOW)
    assert view.refusal(claims(version=1, issued=-STALE_AFTER - 1), NOW) is None


def test_a_revocation_is_forgotten_once_every_token_it_ends_has_expired() -> None:
    view = confirmed_view(role_changed(version=2, when=0), role_changed(version=2, user_id=2003, when=600))
    view.forget_expired(NOW + TTL + CLOCK_SKEW_SECONDS - 1)
    assert len(view) == 2
    view.forget_expired(NOW + TTL + CLOCK_SKEW_SECONDS + 1)
    assert len(view) == 1
    assert view.refusal(claims(version=1, user_id=2003), NOW + 700) is not None


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_the_verifier_refuses_a_remembered_token_once_its_user_is_revoked() -> None:
    key, clock = Ed25519PrivateKey.generate(), Clock()
    view = confirmed_view()
    verifier = TokenVerifier(key.public_key(), "commerce", "shop", clock, revocations=view)
    issuer = TokenIssuer(key, "commerce", "shop", timedelta(hours=1))
    token = issuer.issue(ADA, "ada@example.com", "admin", at(0), user_version=1)
    assert verifier.verify(token).user_version == 1  # now remembered
    view.apply(role_changed(version=2))
    with pytest.raises(TokenRevoked, match="revoked"):
        verifier.verify(token)
    fresh = issuer.issue(ADA, "ada@example.com", "customer", at(1), user_version=2)
    assert verifier.verify(fresh).role == "customer"


def test_a_revoked_token_is_an_invalid_token_to_every_caller_that_catches_those() -> None:
    assert issubclass(TokenRevoked, InvalidToken)
