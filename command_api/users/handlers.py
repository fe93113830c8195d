"""Load -> decide -> append for the users context; password hashing happens here, off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from auth.tokens import TokenIssuer
from command_api.eventstore.model import CommandContext, Committed, EventStore
from command_api.users import domain
from command_api.users.commands import LogIn, RegisterUser
from command_api.users.domain import USER, normalize_email, user_aggregate_id
from event_schemas.users import Role


class InvalidCredentials(domain.UsersError):
    """Wrong password and unknown email look the same, so accounts cannot be enumerated."""


@dataclass
class UsersHandlers:
    store: EventStore
    hasher: PasswordHasher
    issuer: TokenIssuer
    admin_emails: frozenset[str]

    def __post_init__(self) -> None:
        # Verifying against a real hash for unknown emails keeps the response time the same.
        self._decoy_hash = self.hasher.hash("decoy password for unknown emails")

    async def register(self, command: RegisterUser, context: CommandContext, now: datetime) -> Committed:
        password_hash = await asyncio.to_thread(self.hasher.hash, command.password)
        role: Role = "admin" if normalize_email(command.email) in self.admin_emails else "customer"
        return await self.store.execute(
            USER,
            user_aggregate_id(command.email),
            lambda user: domain.register(
                user,
                username=command.username,
                email=command.email,
                password_hash=password_hash,
                role=role,
                now=now,
            ),
            context,
        )

    async def log_in(self, command: LogIn, now: datetime) -> str:
        user = (await self.store.load(USER, user_aggregate_id(command.email))).state
        password_ok = await asyncio.to_thread(
            self._password_matches, user.password_hash or self._decoy_hash, command.password
        )
        if not (user.registered and password_ok):
            raise InvalidCredentials("Invalid email or password")
        return self.issuer.issue(user.user_id, user.email, user.role, now)

    async def change_role(self, email: str, role: Role, context: CommandContext, now: datetime) -> Committed:
        return await self.store.execute(
            USER, user_aggregate_id(email), lambda user: domain.change_role(user, role, now), context
        )

    def _password_matches(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except VerificationError:
            return False
