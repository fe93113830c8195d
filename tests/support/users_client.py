"""Small HTTP helpers for the users service, so tests read as the behaviour they check."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def register(
    base_url: str, email: str | None = None, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    body = {"username": "shopper", "email": email or new_email(), "password": password, **extra}
    return httpx.post(f"{base_url}/auth/register", json=body, timeout=30)


def log_in(base_url: str, email: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{base_url}/auth/login", json={"email": email, "password": password}, timeout=30)


def token_for(base_url: str, email: str, password: str = PASSWORD) -> str:
    response = log_in(base_url, email, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def set_role(base_url: str, email: str, role: str, service_token: str) -> httpx.Response:
    """What `./run admin EMAIL` (and `withdraw-admin`) does: an operator's command, with a service token."""
    return httpx.post(
        f"{base_url}/internal/users/roles",
        json={"email": email, "role": role},
        headers=bearer(service_token),
        timeout=30,
    )


def make_admin(base_url: str, email: str, service_token: str) -> None:
    response = set_role(base_url, email, "admin", service_token)
    assert response.status_code == 200, response.text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
