"""HTTP command -> Kafka -> projector -> HTTP query, for the users service."""

from __future__ import annotations

import httpx
import pytest

from tests.support.processes import HttpService
from tests.support.users_client import bearer, new_email, register, token_for

pytestmark = pytest.mark.integration


def test_register_login_validate_and_read_the_profile_back(users_service: HttpService) -> None:
    email = new_email()
    registered = register(users_service.url, email=email)
    assert registered.status_code == 201
    token = token_for(users_service.url, email)

    validated = httpx.get(f"{users_service.url}/auth/validate", headers=bearer(token))
    assert validated.status_code == 200
    assert validated.json()["id"] == registered.json()["user"]["id"]

    profile = httpx.get(
        f"{users_service.url}/users/me",
        headers=bearer(token) | {"X-Consistency-Token": registered.headers["X-Consistency-Token"]},
    )
    assert profile.status_code == 200, profile.text
    assert profile.json()["email"] == email
    assert profile.json()["username"] == "shopper"
    assert profile.json()["id"] == registered.json()["user"]["id"]
    assert "password" not in profile.text
