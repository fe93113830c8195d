"""Load -> decide -> append for the users context. Login and registration are limited per caller and
hash passwords (bounded, off the event loop) only on the instance that owns the user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from auth.tokens import TokenIssuer
from command_api.eventstore.model import CommandContext, Committed, EventStore
from command_api.users import domain
from command_api.users.commands import LogIn, RegisterUser
from command_api.users.domain import USER, user_aggregate_id
from command_api.users.limits import AuthAttempts
from command_api.users.password_hashing import PasswordHashing
from event_schemas.users import Role


class InvalidCredentials(domain.UsersError):
    """Wrong password and unknown email look the same, so accounts cannot be enumerated."""


@dataclass
class UsersHandlers:
    store: EventStore
    hashing: PasswordHashing
    attempts: AuthAttempts
    issuer: TokenIssuer

    async def register(
        self, command: RegisterUser, client: str, context: CommandContext, now: datetime
    ) -> Committed:
        # Loading first sends a registration that reached another instance on to the owner before it is
        # counted or hashed: the owner does both, once.
        await self.store.load(USER, user_aggregate_id(command.email))
        await self.attempts.admit_registration(client, now)
        password_hash = await self.hashing.hash(command.password)
        return await self.store.execute(
            USER,
            user_aggregate_id(command.email),
            lambda user: domain.register(
                user,
                username=command.username,
                email=command.email,
                password_hash=password_hash,
                role="customer",  # admins are made by an operator's command, never by an email
                now=now,
            ),
            context,
        )

    async def log_in(self, command: LogIn, client: str, now: datetime) -> str:
        loaded = await self.store.load(USER, user_aggregate_id(command.email))
        user = loaded.state
        await self.attempts.admit_login(command.email, client, now)
        password_ok = await self.hashing.verify(user.password_hash or None, command.password)
        if not (user.registered and password_ok):
            raise InvalidCredentials("Invalid email or password")
        await self.attempts.login_succeeded(command.email)
        # The token carries the version of the user it was issued at: a later role change or revocation
        # of sessions ends it (auth/revocations.py).
        return self.issuer.issue(user.user_id, user.email, user.role, now, user_version=loaded.version)

    async def change_role(self, email: str, role: Role, context: CommandContext, now: datetime) -> Committed:
        return await self.store.execute(
            USER, user_aggregate_id(email), lambda user: domain.change_role(user, role, now), context
        )

    async def revoke_sessions(self, email: str, context: CommandContext, now: datetime) -> Committed:
        return await self.store.execute(
            USER, user_aggregate_id(email), lambda user: domain.revoke_sessions(user, now), context
        )
