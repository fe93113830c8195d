"""Load -> decide -> append for the users context. Login and registration are limited per caller and
hash passwords (bounded, off the event loop) only on the instance that owns the user."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


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
            await self.attempts.login_failed(command.email, now)
            raise InvalidCredentials("Invalid email or password")
        await self.attempts.login_succeeded(command.email)
        if self.hashing.needs_rehash(user.password_hash):
            await self._rehash(command, user.password_hash, now)
        # The token carries the version of the user it was issued at: a later role change or revocation
        # of sessions ends it (auth/revocations.py).
        return self.issuer.issue(user.user_id, user.email, user.role, now, user_version=loaded.version)

    async def _rehash(self, command: LogIn, old_hash: str, now: datetime) -> None:
        """The password is known only at a login: a hash made with older parameters is made again now.
        The login stands whatever happens to this (the next login tries again)."""
        try:
            new_hash = await self.hashing.hash(command.password)
            await self.store.execute(
                USER,
                user_aggregate_id(command.email),
                lambda user: domain.rehash_password(user, old_hash=old_hash, new_hash=new_hash, now=now),
                CommandContext(),
            )
        except Exception as error:  # a login never fails for its rehash
            log.warning("could not rehash a password at login (the next login tries again): %r", error)

    async def change_role(self, email: str, role: Role, context: CommandContext, now: datetime) -> Committed:
        return await self.store.execute(
            USER, user_aggregate_id(email), lambda user: domain.change_role(user, role, now), context
        )

    async def revoke_sessions(self, email: str, context: CommandContext, now: datetime) -> Committed:
        return await self.store.execute(
            USER, user_aggregate_id(email), lambda user: domain.revoke_sessions(user, now), context
        )
