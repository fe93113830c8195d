"""The users service over HTTP, against real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from command_api.idempotency import scoped_key
from event_schemas.topics import USERS, in_namespace
from event_schemas.users import UserRegistered
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.processes import HttpService
from tests.support.users_client import bearer, log_in, new_email, register, token_for

pytestmark = pytest.mark.integration


def test_registering_answers_201_with_the_user_and_never_the_password_hash(
    users_service: HttpService, deployment: Deployment
) -> None:
    email = new_email()
    response = register(users_service.url, email=email.upper())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == "User created"
    assert set(body["user"]) == {"id", "username", "email", "role"}
    assert body["user"]["email"] == email
    assert body["user"]["role"] == "customer"
    assert isinstance(body["user"]["id"], int)
    assert "argon2" not in response.text and "password" not in response.text
    assert response.headers["X-Consistency-Token"].startswith(in_namespace(deployment.namespace, USERS) + ":")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "shopper", "email": "not-an-email", "password": "correct horse"}, "email"),
        ({"username": "shopper", "email": "a@example.com", "password": "short"}, "password"),
        ({"username": "x", "email": "a@example.com", "password": "correct horse"}, "username"),
        ({"username": "shopper", "email": "a@example.com"}, "password"),
        (
            {"username": "shopper", "email": "a@example.com", "password": "correct horse", "role": "admin"},
            "role",
        ),
    ],
)
def test_invalid_registrations_get_a_422_naming_the_field(
    users_service: HttpService, body: dict[str, str], field: str
) -> None:
    response = httpx.post(f"{users_service.url}/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert field in [detail["field"] for detail in response.json()["details"]]


def test_a_body_that_is_not_json_gets_a_422_not_a_500(users_service: HttpService) -> None:
    response = httpx.post(
        f"{users_service.url}/auth/register",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_json"


def test_an_email_can_be_registered_once_whatever_its_case(users_service: HttpService) -> None:
    email = new_email()
    assert register(users_service.url, email=email).status_code == 201
    again = register(users_service.url, email=email.upper())
    assert again.status_code == 409
    assert again.json() == {"message": "a user with this email already exists", "error": "email_taken"}


def test_of_twenty_concurrent_registrations_of_one_email_exactly_one_succeeds(
    users_service: HttpService,
) -> None:
    email = new_email()

    async def race() -> list[int]:
        async with httpx.AsyncClient(base_url=users_service.url, timeout=60) as client:
            body = {"username": "racer", "email": email, "password": "correct horse battery"}
            responses = await asyncio.gather(*(client.post("/auth/register", json=body) for _ in range(20)))
            return sorted(r.status_code for r in responses)

    assert asyncio.run(race()) == [201] + [409] * 19


def test_a_user_can_log_in_right_after_registering(users_service: HttpService) -> None:
    email = new_email()
    registered = register(users_service.url, email=email).json()["user"]
    response = log_in(users_service.url, email)
    assert response.status_code == 200
    assert response.json()["message"] == "Login successful"
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert jwt.get_unverified_header(response.json()["token"])["alg"] == "EdDSA"
    assert claims["sub"] == str(registered["id"])
    assert claims["email"] == email
    assert claims["role"] == "customer"
    assert {"iat", "exp", "iss", "aud"} <= set(claims)
    assert claims["exp"] > claims["iat"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(users_service: HttpService) -> None:
    email = new_email()
    register(users_service.url, email=email)
    wrong_password = log_in(users_service.url, email, "not the password")
    unknown_email = log_in(users_service.url, new_email())
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()


def test_validate_returns_the_id_and_email_of_a_valid_token(users_service: HttpService) -> None:
    email = new_email()
    user = register(users_service.url, email=email).json()["user"]
    response = httpx.get(
        f"{users_service.url}/auth/validate", headers=bearer(token_for(users_service.url, email))
    )
    assert response.status_code == 200
    assert response.json()["id"] == user["id"]
    assert response.json()["email"] == email


def _forge(claims: dict[str, object], header: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "wrong_signature",
        "alg_none",
        "garbage",
        "no_header",
        "no_bearer",
        "service_role_by_users_key",
        "admin_role_by_service_key",
    ],
)
def test_validate_refuses_bad_tokens_with_401(
    users_service: HttpService, deployment: Deployment, kind: str
) -> None:
    email = new_email()
    register(users_service.url, email=email)
    genuine = token_for(users_service.url, email)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    settings = deployment.settings
    key = load_pem_private_key(settings.jwt_private_key_file.read_bytes(), None)
    service_key = load_pem_private_key(settings.service_private_key_file.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey) and isinstance(service_key, Ed25519PrivateKey)
    now = int(time.time())
    headers: dict[str, str] = {
        "expired": bearer(
            jwt.encode(claims | {"iat": now - 7200, "exp": now - 3600}, key, algorithm="EdDSA")
        ),
        "wrong_signature": bearer(jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")),
        "alg_none": bearer(_forge(claims | {"role": "admin"}, {"alg": "none", "typ": "JWT"})),
        "garbage": bearer("not.a.token"),
        "no_header": {},
        "no_bearer": {"Authorization": genuine},
        # Each key is believed for its own roles only, whichever issuer the token claims.
        "service_role_by_users_key": bearer(jwt.encode(claims | {"role": "service"}, key, algorithm="EdDSA")),
        "admin_role_by_service_key": bearer(
            jwt.encode(
                claims | {"role": "admin", "iss": settings.service_issuer}, service_key, algorithm="EdDSA"
            )
        ),
    }[kind]
    response = httpx.get(f"{users_service.url}/auth/validate", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_retry_with_the_same_idempotency_key_returns_the_first_result_and_appends_nothing(
    users_service: HttpService, deployment: Deployment
) -> None:
    email = new_email()
    body = {"username": "retrier", "email": email, "password": "correct horse battery"}
    headers = {"Idempotency-Key": f"register-{email}"}
    first = httpx.post(f"{users_service.url}/auth/register", json=body, headers=headers)
    retry = httpx.post(f"{users_service.url}/auth/register", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["X-Consistency-Token"] == first.headers["X-Consistency-Token"]
    appended = [
        event
        for event, _ in committed_events(
            deployment.servers.kafka_bootstrap, in_namespace(deployment.namespace, USERS)
        )
        if isinstance(event, UserRegistered) and event.email == email
    ]
    assert len(appended) == 1
    # The key as the caller's own: scoped to an anonymous caller and the route.
    assert appended[0].idempotency_key == scoped_key("anonymous", "POST /auth/register", f"register-{email}")


def test_the_event_in_kafka_carries_the_envelope_and_only_an_argon2id_hash(
    users_service: HttpService, deployment: Deployment
) -> None:
    email = new_email()
    response = register(users_service.url, email=email, password="a secret nobody sees")
    [(event, headers)] = [
        (event, headers)
        for event, headers in committed_events(
            deployment.servers.kafka_bootstrap, in_namespace(deployment.namespace, USERS)
        )
        if isinstance(event, UserRegistered) and event.email == email
    ]
    assert isinstance(event, UserRegistered)
    assert event.user_id == response.json()["user"]["id"]
    assert event.password_hash.startswith("$argon2id$")
    assert "a secret nobody sees" not in event.model_dump_json()
    assert event.aggregate_version == 1 and event.occurred_at.tzinfo is not None
    assert headers == {"event_type": b"UserRegistered", "schema_version": b"1"}


def test_a_malformed_consistency_token_is_a_422(users_service: HttpService) -> None:
    email = new_email()
    register(users_service.url, email=email)
    response = httpx.get(
        f"{users_service.url}/users/me",
        headers=bearer(token_for(users_service.url, email)) | {"X-Consistency-Token": "nonsense"},
    )
    assert response.status_code == 422


def test_an_email_once_listed_as_admin_registers_as_a_customer(own_deployment: Deployment) -> None:
    """Owning an address proves nothing: admins are made by an operator's command only (the setting
    that made listed emails register as admins is gone, and is ignored if still set)."""
    users = own_deployment.gateway("users", env={"COMMERCE_ADMIN_EMAILS": '["boss@example.com"]'}).start()
    try:
        registered = register(users.url, email="boss@example.com")
        assert registered.status_code == 201 and registered.json()["user"]["role"] == "customer"
        claims = jwt.decode(token_for(users.url, "boss@example.com"), options={"verify_signature": False})
        assert claims["role"] == "customer"
    finally:
        users.stop()


def test_an_admin_made_by_the_operators_command_may_change_roles(
    users_service: HttpService, admin_token: str
) -> None:
    customer_email = new_email()
    register(users_service.url, email=customer_email)
    customer_token = token_for(users_service.url, customer_email)

    refused = httpx.post(
        f"{users_service.url}/users/roles",
        json={"email": customer_email, "role": "admin"},
        headers=bearer(customer_token),
    )
    assert refused.status_code == 403
    promoted = httpx.post(
        f"{users_service.url}/users/roles",
        json={"email": customer_email, "role": "admin"},
        headers=bearer(admin_token),
    )
    assert promoted.status_code == 200, promoted.text
    claims = jwt.decode(token_for(users_service.url, customer_email), options={"verify_signature": False})
    assert claims["role"] == "admin"


def test_events_carry_the_callers_correlation_id_and_the_command_as_their_cause(
    users_service: HttpService, deployment: Deployment
) -> None:
    email, correlation = new_email(), uuid.uuid4()
    response = httpx.post(
        f"{users_service.url}/auth/register",
        json={"username": "traced", "email": email, "password": "correct horse battery"},
        headers={"X-Correlation-Id": str(correlation)},
    )
    assert response.status_code == 201
    assert response.headers["X-Correlation-Id"] == str(correlation)
    [event] = [
        event
        for event, _ in committed_events(
            deployment.servers.kafka_bootstrap, in_namespace(deployment.namespace, USERS)
        )
        if isinstance(event, UserRegistered) and event.email == email
    ]
    assert event.correlation_id == correlation
    assert event.causation_id == uuid.UUID(response.headers["X-Command-Id"])
    uncorrelated = register(users_service.url)
    assert uncorrelated.headers["X-Correlation-Id"] == uncorrelated.headers["X-Command-Id"]


def test_an_operator_makes_a_registered_user_admin_with_a_command_on_the_server(
    users_service: HttpService, deployment: Deployment
) -> None:
    email = new_email()
    assert register(users_service.url, email=email).status_code == 201
    deployment.run_module("auth", "grant-admin", email, "--users-url", users_service.url)
    token = token_for(users_service.url, email)
    assert httpx.get(f"{users_service.url}/auth/validate", headers=bearer(token)).json()["role"] == "admin"
    customer = httpx.post(
        f"{users_service.url}/internal/users/roles",
        json={"email": email, "role": "customer"},
        headers=bearer(token),
    )
    assert customer.status_code == 403  # an admin is not the platform: internal routes refuse users
