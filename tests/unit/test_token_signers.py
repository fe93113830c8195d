"""Users' tokens and service tokens come from two keys, and each key is believed only for its own roles:
a leaked service key cannot make an admin, nor the users key a service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.tokens import (
    InvalidToken,
    Role,
    ServiceTokenIssuer,
    TokenIssuer,
    TokenVerifier,
    load_issuer,
    load_service_issuer,
    load_verifier,
    service_token,
)
from config.settings import Settings

USERS, SERVICES, AUDIENCE = "commerce-users", "commerce-services", "commerce"
HOUR = timedelta(hours=1)


class Keys:
    def __init__(self) -> None:
        self.users = Ed25519PrivateKey.generate()
        self.service = Ed25519PrivateKey.generate()

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(
            self.users.public_key(),
            USERS,
            AUDIENCE,
            service_key=self.service.public_key(),
            service_issuer=SERVICES,
        )


def signed(key: Ed25519PrivateKey, issuer: str, role: Role) -> str:
    return TokenIssuer(key, issuer, AUDIENCE, HOUR).issue(1003, "ada@example.com", role, datetime.now(UTC))


@pytest.mark.parametrize("role", ["customer", "admin"])
def test_a_users_key_token_for_a_user_role_is_accepted(role: Role) -> None:
    keys = Keys()
    assert keys.verifier().verify(signed(keys.users, USERS, role)).role == role


def test_a_service_key_token_for_the_service_role_is_accepted() -> None:
    keys = Keys()
    issuer = ServiceTokenIssuer(keys.service, SERVICES, AUDIENCE, HOUR)
    claims = keys.verifier().verify(service_token(issuer, "order-saga", datetime.now(UTC)))
    assert (claims.role, claims.email) == ("service", "order-saga.service")


# Each forgery under both issuers: the issuer it claims picks the key its signature is checked with.
@pytest.mark.parametrize("claimed_issuer", [USERS, SERVICES])
def test_a_users_key_token_claiming_the_service_role_is_refused(claimed_issuer: str) -> None:
    keys = Keys()
    with pytest.raises(InvalidToken):
        keys.verifier().verify(signed(keys.users, claimed_issuer, "service"))


@pytest.mark.parametrize("claimed_issuer", [USERS, SERVICES])
def test_a_service_key_token_claiming_the_admin_role_is_refused(claimed_issuer: str) -> None:
    keys = Keys()
    with pytest.raises(InvalidToken):
        keys.verifier().verify(signed(keys.service, claimed_issuer, "admin"))


@pytest.mark.parametrize("claimed_issuer", [USERS, SERVICES])
def test_a_service_key_token_claiming_the_customer_role_is_refused(claimed_issuer: str) -> None:
    keys = Keys()
    with pytest.raises(InvalidToken):
        keys.verifier().verify(signed(keys.service, claimed_issuer, "customer"))


def test_a_users_key_token_under_the_service_issuer_is_refused_even_for_a_user_role() -> None:
    keys = Keys()
    with pytest.raises(InvalidToken):
        keys.verifier().verify(signed(keys.users, SERVICES, "customer"))


def test_a_verifier_without_a_service_key_refuses_every_service_token() -> None:
    keys = Keys()
    verifier = TokenVerifier(keys.users.public_key(), USERS, AUDIENCE)
    with pytest.raises(InvalidToken, match="issuer"):
        verifier.verify(signed(keys.service, SERVICES, "service"))


def test_service_tokens_cannot_share_the_users_issuer() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ValueError, match="issuer"):
        TokenVerifier(key, USERS, AUDIENCE, service_key=key, service_issuer=USERS)
    with pytest.raises(ValueError, match="differ"):
        Settings(jwt_issuer="commerce", service_issuer="commerce")


def settings_in(directory: Path, environment: str = "local") -> Settings:
    return Settings.model_validate(
        {
            "environment": environment,
            "jwt_private_key_file": directory / "jwt.pem",
            "jwt_public_key_file": directory / "jwt.pub.pem",
            "service_private_key_file": directory / "service.pem",
            "service_public_key_file": directory / "service.pub.pem",
        }
    )


def test_local_mode_creates_two_different_pairs_whose_tokens_the_verifier_tells_apart(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    verifier = load_verifier(settings)
    assert settings.jwt_private_key_file.read_bytes() != settings.service_private_key_file.read_bytes()
    now = datetime.now(UTC)
    assert verifier.verify(service_token(load_service_issuer(settings), "ops", now)).role == "service"
    assert verifier.verify(load_issuer(settings).issue(7, "a@example.com", "admin", now)).role == "admin"
    with pytest.raises(InvalidToken):
        verifier.verify(load_issuer(settings).issue(7, "a@example.com", "service", now))


def test_in_production_each_signer_needs_only_its_own_private_key(tmp_path: Path) -> None:
    load_verifier(settings_in(tmp_path))  # both pairs, as an operator would provide them
    users_host, saga_host = tmp_path / "users", tmp_path / "saga"
    for host, private in ((users_host, "jwt.pem"), (saga_host, "service.pem")):
        host.mkdir()
        for name in ("jwt.pub.pem", "service.pub.pem", private):
            (host / name).write_bytes((tmp_path / name).read_bytes())
    load_issuer(settings_in(users_host, "production"))
    load_verifier(settings_in(users_host, "production"))
    load_service_issuer(settings_in(saga_host, "production"))
    with pytest.raises(RuntimeError, match="COMMERCE_SERVICE_PRIVATE_KEY_FILE"):
        load_service_issuer(settings_in(users_host, "production"))
    with pytest.raises(RuntimeError, match="COMMERCE_JWT_PRIVATE_KEY_FILE"):
        load_issuer(settings_in(saga_host, "production"))
    assert not (users_host / "service.pem").exists() and not (saga_host / "jwt.pem").exists()


def test_production_refuses_to_start_without_the_service_public_key(tmp_path: Path) -> None:
    load_verifier(settings_in(tmp_path))
    (tmp_path / "service.pub.pem").unlink()
    with pytest.raises(RuntimeError, match="COMMERCE_SERVICE_PUBLIC_KEY_FILE"):
        load_verifier(settings_in(tmp_path, "production"))
