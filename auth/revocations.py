"""Which genuine, unexpired tokens no longer count: the revocations view that every process verifying
tokens folds from the users topic (auth/revocation_feed.py feeds it). Pure; the caller passes `now`.

A role change or a revocation of a user's sessions ends every token issued at an earlier version of
that user. Tokens carry the version of the user they were issued at (`ver`), so the rule compares
versions, not clocks: a login that has seen the change is never refused, one that has not (even from
another instance, or in the same second) always is. Service tokens are never revoked.

While the view cannot confirm that it has read the topic to its end (Kafka out of reach, or still
reading at start), a withdrawal may have happened that it does not know of: it then refuses admin
tokens older than `stale_after`. So a withdrawn admin keeps the role for the feed's lag (milliseconds)
when Kafka answers, and at most `stale_after` whatever happens to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from auth.tokens import Claims
from event_schemas.envelope import Event
from event_schemas.users import UserRoleChanged, UserSessionsRevoked

REVOKING_EVENTS = (UserRoleChanged, UserSessionsRevoked)
REVOKING_EVENT_TYPES = frozenset(cls.event_type for cls in REVOKING_EVENTS)
# Entries outlive the tokens they end by this much, for clocks of the issuing and verifying
# processes that disagree a little.
CLOCK_SKEW_SECONDS = 60.0


@dataclass(frozen=True)
class Revocation:
    user_version: int  # tokens issued at an earlier version of the user no longer count
    occurred_at: float  # seconds since the epoch; the entry goes once every token it ends has expired


class Revocations:
    """User id -> their latest revocation, only for users with one in the last token lifetime (the map
    stays as small as the role changes and revocations of one `token_ttl`)."""

    def __init__(self, *, token_ttl: float, stale_after: float) -> None:
        self._token_ttl = token_ttl
        self._stale_after = stale_after
        self._by_user: dict[int, Revocation] = {}
        # Every revocation committed before this time is in the view.
        self._confirmed_until = -math.inf

    def __len__(self) -> int:
        return len(self._by_user)

    @property
    def confirmed_until(self) -> float:
        return self._confirmed_until

    def apply(self, event: Event) -> None:
        """Fold one event of the users topic (any: those that revoke nothing are ignored). Idempotent,
        and an older event read again never lowers the bar."""
        if not isinstance(event, REVOKING_EVENTS):
            return
        known = self._by_user.get(event.user_id)
        if known is None or known.user_version < event.aggregate_version:
            self._by_user[event.user_id] = Revocation(event.aggregate_version, event.occurred_at.timestamp())

    def confirm(self, as_of: float) -> None:
        """The feed has read every record committed before `as_of`."""
        self._confirmed_until = max(self._confirmed_until, as_of)

    def horizon(self, now: float) -> float:
        """Revocations older than this end only tokens that have expired by now."""
        return now - self._token_ttl - CLOCK_SKEW_SECONDS

    def forget_expired(self, now: float) -> None:
        """Drop the revocations whose tokens have all expired by now."""
        horizon = self.horizon(now)
        for user_id in [u for u, revocation in self._by_user.items() if revocation.occurred_at < horizon]:
            del self._by_user[user_id]

    def refusal(self, claims: Claims, now: float) -> str | None:
        """Why the token no longer counts, or None."""
        if claims.role == "service":
            return None
        revocation = self._by_user.get(claims.user_id)
        if revocation is not None and claims.user_version < revocation.user_version:
            return (
                "this token was revoked (the user's role changed or their sessions were ended); log in again"
            )
        if (
            claims.role == "admin"
            and now - self._confirmed_until > self._stale_after
            and now - claims.issued_at > self._stale_after
        ):
            return (
                f"this service cannot check admin tokens older than {self._stale_after:g}s against "
                "revocations just now; log in again"
            )
        return None
