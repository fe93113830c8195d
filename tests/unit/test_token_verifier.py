"""The verifier remembers verified tokens, but never lets that change what it accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.tokens import InvalidToken, TokenIssuer, TokenVerifier


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def issuer_and_verifier(
    ttl: timedelta = timedelta(hours=1), clock: Clock | None = None
) -> tuple[TokenIssuer, TokenVerifier]:
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier(key.public_key(), "commerce", "shop", clock or Clock())
    return TokenIssuer(key, "commerce", "shop", ttl), verifier


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    clock = Clock()
    issuer, verifier = issuer_and_verifier(ttl=timedelta(seconds=60), clock=clock)
    token = issuer.issue(7, "ada@example.com", "customer", datetime.fromtimestamp(clock.now, UTC))
    assert verifier.verify(token).user_id == 7
    clock.now += 60
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_token_differing_from_a_remembered_one_is_verified_afresh() -> None:
    issuer, verifier = issuer_and_verifier()
    token = issuer.issue(7, "ada@example.com", "customer", datetime.now(UTC))
    verifier.verify(token)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def test_a_token_signed_by_another_key_is_refused_even_with_a_full_memory() -> None:
    issuer, verifier = issuer_and_verifier()
    other, _ = issuer_and_verifier()
    for user_id in range(TokenVerifier.REMEMBERED + 5):
        verifier.verify(issuer.issue(user_id, "a@example.com", "customer", datetime.now(UTC)))
    with pytest.raises(InvalidToken):
        verifier.verify(other.issue(1, "a@example.com", "admin", datetime.now(UTC)))
