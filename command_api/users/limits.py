"""How often a caller may try to log in or register: failed logins per account, login attempts and
registrations per client address, counted in the counters every instance shares.

An account counts its failed logins: a login is admitted if the account's failures are under the limit
(looked at, not counted), a wrong password counts one, and a right one forgets them. So correct logins
never count against an account, however many arrive at once; concurrent wrong guesses can pass the
look together, at most as many as the owner hashes at once (`password_hashing_concurrency`) over the
limit. A client address counts every login attempt. Unknown emails are counted exactly like registered
ones, so neither the answer nor its timing tells whether an account exists."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from command_api.rate_limits.counters import AttemptCounters, CountersUnavailable
from command_api.rate_limits.windows import Limit, Verdict
from command_api.users.domain import normalize_email
from config.settings import Settings
from web.errors import RetryLater

log = logging.getLogger(__name__)


class TooManyAttempts(RetryLater):
    """A limit was reached: 429 with the seed's message, and when to try again."""


@dataclass(frozen=True)
class AuthLimits:
    login_failures_per_account: Limit
    login_attempts_per_address: Limit
    registrations_per_address: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimits:
        return cls(
            Limit(settings.login_failures_per_account, settings.login_failures_window_seconds),
            Limit(settings.login_attempts_per_address, settings.login_attempts_window_seconds),
            Limit(settings.registrations_per_address, settings.registrations_window_seconds),
        )


def _failures_of(email: str) -> str:
    return f"login-failures:{normalize_email(email)}"


@dataclass(frozen=True)
class AuthAttempts:
    counters: AttemptCounters
    limits: AuthLimits

    async def admit_login(self, email: str, address: str, now: datetime) -> None:
        """The address's attempt is counted; the account's failures are only looked at."""
        _enforce(
            await self.counters.attempt(
                {f"login-attempts:{address}": self.limits.login_attempts_per_address},
                now,
                look_at={_failures_of(email): self.limits.login_failures_per_account},
            )
        )

    async def login_failed(self, email: str, now: datetime) -> None:
        """A wrong password (or an unknown email) counts against the account."""
        await self.counters.attempt({_failures_of(email): self.limits.login_failures_per_account}, now)

    async def login_succeeded(self, email: str) -> None:
        """The right password: the account's earlier failures no longer count against it."""
        try:
            await self.counters.forget(_failures_of(email))
        except CountersUnavailable as failure:  # the login stands; the failures then expire with their window
            log.warning("could not forget an account's failed logins: %s", failure)

    async def admit_registration(self, address: str, now: datetime) -> None:
        verdict = await self.counters.attempt(
            {f"registrations:{address}": self.limits.registrations_per_address}, now
        )
        _enforce(verdict)


def _enforce(verdict: Verdict) -> None:
    if not verdict.allowed:
        raise TooManyAttempts("Too many requests, try again later.", retry_after=verdict.retry_after)
