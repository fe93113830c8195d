"""EdDSA (Ed25519) JWTs: the users service signs with the private key, every service verifies with
the public key alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from config.settings import Settings

ALGORITHM = "EdDSA"
# A user's role, or "service": a process of the platform acting for itself (the order saga), which
# may call the internal routes and nothing a customer or an admin may call.
Role = Literal["customer", "admin", "service"]
ROLES: frozenset[str] = frozenset(("customer", "admin", "service"))


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by us."""


class TokenRevoked(InvalidToken):
    """A genuine, unexpired token that no longer counts: its user's role changed or their sessions
    were revoked after it was issued (auth/revocations.py)."""


@dataclass(frozen=True)
class Claims:
    user_id: int
    email: str
    role: Role
    issued_at: int
    expires_at: int
    # The version of the user (their aggregate in the users topic) when the token was issued, claim
    # `ver`; 0 for service tokens and for tokens issued before the claim existed.
    user_version: int = 0


class RevocationCheck(Protocol):
    """Why a verified token no longer counts, or None (auth/revocations.py); a dict lookup, as it runs
    on every authenticated request."""

    def refusal(self, claims: Claims, now: float) -> str | None: ...


class TokenIssuer:
    def __init__(self, private_key: Ed25519PrivateKey, issuer: str, audience: str, ttl: timedelta) -> None:
        self._key = private_key
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl

    def issue(self, user_id: int, email: str, role: Role, now: datetime, user_version: int = 0) -> str:
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "email": email,
            "role": role,
            "ver": user_version,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies tokens, and remembers the ones it verified until they expire: an Ed25519 check costs
    about 140 us, more than the rest of a cached read, and a client sends the same token many times.
    A remembered token is the same string whose signature was checked; its expiry and, with a
    revocation check, whether it was revoked are checked again on every use."""

    REMEMBERED = 10_000

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
        revocations: RevocationCheck | None = None,
    ) -> None:
        self._key = public_key
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._revocations = revocations
        self._verified: dict[str, Claims] = {}  # insertion order: the oldest is dropped first

    def verify(self, token: str) -> Claims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            if len(self._verified) >= self.REMEMBERED:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        now = self._clock()
        if now >= claims.expires_at:  # one expiry rule, for remembered and fresh tokens alike
            del self._verified[token]
            raise InvalidToken("Signature has expired")
        if self._revocations is not None and (refusal := self._revocations.refusal(claims, now)):
            raise TokenRevoked(refusal)
        return claims

    def _verify_signature(self, token: str) -> Claims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],  # a fixed list: never "none", never HS256 with the public key
                issuer=self._issuer,
                audience=self._audience,
                # Expiry is checked by `verify`, against the verifier's clock.
                options={
                    "require": ["sub", "email", "role", "iat", "exp", "iss", "aud"],
                    "verify_exp": False,
                },
            )
            return Claims(
                user_id=int(claims["sub"]),
                email=str(claims["email"]),
                role=claims["role"] if claims["role"] in ROLES else "customer",
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
                user_version=int(claims.get("ver", 0)),
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as error:
            raise InvalidToken(str(error)) from error


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("expected 'Authorization: Bearer <token>'")
    return token.strip()


def _ensure_local_key_pair(settings: Settings) -> None:
    """Local mode only: create a key pair on first use so the stack works out of the box."""
    private_file, public_file = settings.jwt_private_key_file, settings.jwt_public_key_file
    if private_file.exists() and public_file.exists():
        return
    private_file.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_atomically(
        private_file,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        mode=0o600,
    )
    _write_atomically(
        public_file,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        mode=0o644,
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    temporary.replace(path)


def load_issuer(settings: Settings) -> TokenIssuer:
    if settings.environment == "local":
        _ensure_local_key_pair(settings)
    if not settings.jwt_private_key_file.exists():
        raise RuntimeError("COMMERCE_JWT_PRIVATE_KEY_FILE must point at an Ed25519 private key (PEM)")
    key = serialization.load_pem_private_key(settings.jwt_private_key_file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError("the JWT private key must be an Ed25519 key")
    return TokenIssuer(
        key, settings.jwt_issuer, settings.jwt_audience, timedelta(seconds=settings.jwt_ttl_seconds)
    )


SERVICE_USER_ID = 0  # no user account has id 0


def service_token(issuer: TokenIssuer, service: str, now: datetime) -> str:
    """A token that says "the platform's `service` process", for its calls to internal routes."""
    return issuer.issue(SERVICE_USER_ID, f"{service}.service", "service", now)


def load_verifier(settings: Settings, revocations: RevocationCheck | None = None) -> TokenVerifier:
    if settings.environment == "local":
        _ensure_local_key_pair(settings)
    if not settings.jwt_public_key_file.exists():
        raise RuntimeError("COMMERCE_JWT_PUBLIC_KEY_FILE must point at an Ed25519 public key (PEM)")
    key = serialization.load_pem_public_key(settings.jwt_public_key_file.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise RuntimeError("the JWT public key must be an Ed25519 key")
    return TokenVerifier(key, settings.jwt_issuer, settings.jwt_audience, revocations=revocations)
