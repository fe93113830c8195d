"""Events of the users context: registration, roles, sessions and password hashes."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from event_schemas.envelope import Event

Role = Literal["customer", "admin"]


class UserEvent(Event):
    aggregate_type: ClassVar[str] = "User"


class UserRegistered(UserEvent):
    """A user account was opened. Only the argon2id hash of the password is ever recorded."""

    event_type: ClassVar[str] = "UserRegistered"

    user_id: int = Field(gt=0)
    username: str
    email: str
    password_hash: str = Field(pattern=r"^\$argon2id\$")
    role: Role


class UserRoleChanged(UserEvent):
    """An operator changed a user's role (for example, made them an admin). Every token issued to the
    user before it stops working (auth/revocations.py): the next login carries the new role."""

    event_type: ClassVar[str] = "UserRoleChanged"

    user_id: int = Field(gt=0)
    role: Role


class UserSessionsRevoked(UserEvent):
    """An operator ended all of a user's sessions (a stolen token, a lost laptop): every token issued
    to the user before it stops working, wherever it is presented."""

    event_type: ClassVar[str] = "UserSessionsRevoked"

    user_id: int = Field(gt=0)


class UserPasswordRehashed(UserEvent):
    """The user's password hash, made again with the current hashing parameters at a successful login
    (the password is known only then). Revokes nothing: the password is the same."""

    event_type: ClassVar[str] = "UserPasswordRehashed"

    user_id: int = Field(gt=0)
    password_hash: str = Field(pattern=r"^\$argon2id\$")
