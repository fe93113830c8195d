"""EdDSA (Ed25519) JWTs from two signers: the users service signs customers' and admins' tokens with
the users key, the platform's own processes (the order saga, the operator's commands) sign service
tokens with the service key; every service verifies both with the public keys alone."""

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
# may call the internal routes and nothing a customer or an admin may call. Users' roles are signed
# with the users key, "service" with the service key, and a token is believed only for its key's roles.
Role = Literal["customer", "admin", "service"]
USER_ROLES: frozenset[str] = frozenset(("customer", "admin"))
SERVICE_ROLES: frozenset[str] = frozenset(("service",))


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


class ServiceTokenIssuer(TokenIssuer):
    """A TokenIssuer holding the service key: its own type, so that the users key can never be handed
    to what signs service tokens (the verifier would refuse those anyway)."""


@dataclass(frozen=True)
class Signer:
    """A key the verifier believes, for the roles it may grant and no others."""

    public_key: Ed25519PublicKey
    roles: frozenset[str]


class TokenVerifier:
    """Verifies tokens, and remembers the ones it verified until they expire: an Ed25519 check costs
    about 140 us, more than the rest of a cached read, and a client sends the same token many times.
    A remembered token is the same string whose signature was checked; its expiry and, with a
    revocation check, whether it was revoked are checked again on every use.

    A token's `iss` names its signer: `issuer` (the users service, users key: customers and admins)
    or `service_issuer` (the platform, service key: role "service" only). The signature is checked
    with that signer's key alone and the role must be one it may grant, so a leaked service key
    cannot make a user's token, nor the users key a service's."""

    REMEMBERED = 10_000

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
        revocations: RevocationCheck | None = None,
        *,
        service_key: Ed25519PublicKey | None = None,
        service_issuer: str = "",
    ) -> None:
        self._signers = {issuer: Signer(public_key, USER_ROLES)}
        if service_key is not None:
            if service_issuer in ("", issuer):
                raise ValueError("service tokens need an issuer of their own")
            self._signers[service_issuer] = Signer(service_key, SERVICE_ROLES)
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
            # The claimed issuer only picks the key; the signature, then the issuer and role, decide.
            unverified = jwt.decode(token, options={"verify_signature": False})
            claimed_issuer = unverified.get("iss")
            signer = self._signers.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
            if signer is None:
                raise InvalidToken("Invalid issuer")
            claims = jwt.decode(
                token,
                signer.public_key,
                algorithms=[ALGORITHM],  # a fixed list: never "none", never HS256 with the public key
                issuer=claimed_issuer,
                audience=self._audience,
                # Expiry is checked by `verify`, against the verifier's clock.
                options={
                    "require": ["sub", "email", "role", "iat", "exp", "iss", "aud"],
                    "verify_exp": False,
                },
            )
            if claims["role"] not in signer.roles:
                raise InvalidToken("the key that signed this token may not grant its role")
            return Claims(
                user_id=int(claims["sub"]),
                email=str(claims["email"]),
                role=claims["role"],
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


def _ensure_local_key_pair(settings: Settings, private_file: Path, public_file: Path) -> None:
    """Local mode only: create a key pair on first use so the stack works out of the box."""
    if settings.environment != "local" or (private_file.exists() and public_file.exists()):
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


def _ensure_local_users_keys(settings: Settings) -> None:
    _ensure_local_key_pair(settings, settings.jwt_private_key_file, settings.jwt_public_key_file)


def _ensure_local_service_keys(settings: Settings) -> None:
    _ensure_local_key_pair(settings, settings.service_private_key_file, settings.service_public_key_file)


def ensure_local_keys(settings: Settings) -> None:
    """Local mode: both key pairs, the users' and the services', created if missing, before the
    processes start so that no two race to create them. Production never creates keys: each host is
    given the files it needs (the users service the users private key, the saga's host and the
    operator the service private key, every service both public keys)."""
    _ensure_local_users_keys(settings)
    _ensure_local_service_keys(settings)


def _private_key(path: Path, setting: str) -> Ed25519PrivateKey:
    if not path.exists():
        raise RuntimeError(f"COMMERCE_{setting.upper()} must point at an Ed25519 private key (PEM)")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"COMMERCE_{setting.upper()} must hold an Ed25519 key")
    return key


def _public_key(path: Path, setting: str) -> Ed25519PublicKey:
    if not path.exists():
        raise RuntimeError(f"COMMERCE_{setting.upper()} must point at an Ed25519 public key (PEM)")
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise RuntimeError(f"COMMERCE_{setting.upper()} must hold an Ed25519 key")
    return key


def load_issuer(settings: Settings) -> TokenIssuer:
    """The users service's signer of customers' and admins' tokens (the users private key)."""
    _ensure_local_users_keys(settings)
    key = _private_key(settings.jwt_private_key_file, "jwt_private_key_file")
    return TokenIssuer(
        key, settings.jwt_issuer, settings.jwt_audience, timedelta(seconds=settings.jwt_ttl_seconds)
    )


def load_service_issuer(settings: Settings) -> ServiceTokenIssuer:
    """The signer of the platform's own processes' tokens (the service private key): what the order
    saga and the operator's commands hold instead of the users key."""
    _ensure_local_service_keys(settings)
    key = _private_key(settings.service_private_key_file, "service_private_key_file")
    return ServiceTokenIssuer(
        key,
        settings.service_issuer,
        settings.jwt_audience,
        timedelta(seconds=settings.jwt_ttl_seconds),
    )


SERVICE_USER_ID = 0  # no user account has id 0


def service_token(issuer: ServiceTokenIssuer, service: str, now: datetime) -> str:
    """A token that says "the platform's `service` process", for its calls to internal routes."""
    return issuer.issue(SERVICE_USER_ID, f"{service}.service", "service", now)


def load_verifier(settings: Settings, revocations: RevocationCheck | None = None) -> TokenVerifier:
    """Both public keys: every service accepts users' tokens and the platform's service tokens."""
    ensure_local_keys(settings)
    return TokenVerifier(
        _public_key(settings.jwt_public_key_file, "jwt_public_key_file"),
        settings.jwt_issuer,
        settings.jwt_audience,
        revocations=revocations,
        service_key=_public_key(settings.service_public_key_file, "service_public_key_file"),
        service_issuer=settings.service_issuer,
    )
