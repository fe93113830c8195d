"""The User aggregate: pure decisions and the fold. One aggregate per normalized email, which is what
makes emails unique: two registrations of one email are two decisions on one aggregate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from functools import singledispatch

from command_api.eventstore.model import AggregateKind, Loaded
from event_schemas.envelope import Event
from event_schemas.users import (
    Role,
    UserPasswordRehashed,
    UserRegistered,
    UserRoleChanged,
    UserSessionsRevoked,
)

_EMAIL_NAMESPACE = uuid.UUID("6b1f3c1e-0d5e-4c1a-9a57-2f2d3b7e9c41")


class UsersError(Exception):
    """A command the users context refuses."""


class EmailAlreadyRegistered(UsersError):
    pass


class UnknownUser(UsersError):
    pass


@dataclass(frozen=True)
class UserState:
    registered: bool = False
    user_id: int = 0
    username: str = ""
    email: str = ""
    password_hash: str = ""
    role: Role = "customer"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_aggregate_id(email: str) -> str:
    """Deterministic, so every instance finds the same aggregate (and partition) for an email."""
    return f"user-{uuid.uuid5(_EMAIL_NAMESPACE, normalize_email(email))}"


@singledispatch
def _apply(event: Event, state: UserState) -> UserState:
    return state


@_apply.register
def _registered(event: UserRegistered, state: UserState) -> UserState:
    return UserState(True, event.user_id, event.username, event.email, event.password_hash, event.role)


@_apply.register
def _role_changed(event: UserRoleChanged, state: UserState) -> UserState:
    return replace(state, role=event.role)


@_apply.register
def _rehashed(event: UserPasswordRehashed, state: UserState) -> UserState:
    return replace(state, password_hash=event.password_hash)


def evolve(state: UserState, event: Event) -> UserState:
    return _apply(event, state)


USER = AggregateKind[UserState](name="User", initial=UserState(), evolve=evolve)


def register(
    user: Loaded[UserState], *, username: str, email: str, password_hash: str, role: Role, now: datetime
) -> list[Event]:
    if user.state.registered:
        raise EmailAlreadyRegistered("a user with this email already exists")
    return [
        UserRegistered(
            aggregate_id=user.aggregate_id,
            aggregate_version=user.version + 1,
            occurred_at=now,
            user_id=user.next_numeric_id,
            username=username,
            email=normalize_email(email),
            password_hash=password_hash,
            role=role,
        )
    ]


def change_role(user: Loaded[UserState], role: Role, now: datetime) -> list[Event]:
    if not user.state.registered:
        raise UnknownUser("no user has this email")
    if user.state.role == role:
        return []
    return [
        UserRoleChanged(
            aggregate_id=user.aggregate_id,
            aggregate_version=user.version + 1,
            occurred_at=now,
            user_id=user.state.user_id,
            role=role,
        )
    ]


def revoke_sessions(user: Loaded[UserState], now: datetime) -> list[Event]:
    """Never a no-op: each revocation ends the tokens issued before it, including those issued since
    the last one."""
    if not user.state.registered:
        raise UnknownUser("no user has this email")
    return [
        UserSessionsRevoked(
            aggregate_id=user.aggregate_id,
            aggregate_version=user.version + 1,
            occurred_at=now,
            user_id=user.state.user_id,
        )
    ]


def rehash_password(user: Loaded[UserState], *, old_hash: str, new_hash: str, now: datetime) -> list[Event]:
    """Replace the hash the login was checked against by one made with the current parameters; if it
    changed meanwhile (another login rehashed it first), this one decides nothing."""
    if not user.state.registered or user.state.password_hash != old_hash:
        return []
    return [
        UserPasswordRehashed(
            aggregate_id=user.aggregate_id,
            aggregate_version=user.version + 1,
            occurred_at=now,
            user_id=user.state.user_id,
            password_hash=new_hash,
        )
    ]
