"""An instance paused past its session (SIGSTOP, then SIGCONT) never answers from the state it had:
another instance has taken its partitions over meanwhile and changed what it knew."""

from __future__ import annotations

import httpx
import jwt
import pytest

from command_api.eventstore.partitioning import partition_of
from command_api.users.domain import USER, user_aggregate_id
from tests.support.deployment import Deployment
from tests.support.processes import HttpService, wait_until_partitions_split
from tests.support.users_client import bearer, log_in, make_admin, new_email, register, set_role

pytestmark = pytest.mark.integration


def partitions_ready(instance: HttpService, token: str) -> set[int]:
    body = httpx.get(f"{instance.url}/internal/partitions", headers=bearer(token), timeout=5).json()
    return set(body["users"]["ready"])


def role_in(login: httpx.Response) -> str:
    claims = jwt.decode(login.json()["token"], options={"verify_signature": False})
    role: str = claims["role"]
    return role


def test_a_paused_owner_resumed_answers_only_what_the_log_now_says(own_deployment: Deployment) -> None:
    partitions = own_deployment.settings.kafka_partitions
    operator = own_deployment.service_token()
    first = own_deployment.gateway("users", side="command", name="users-paused-a").start()
    second = own_deployment.gateway("users", side="command", name="users-paused-b").start()
    try:
        wait_until_partitions_split("users", [first, second], partitions, own_deployment.admin_token())
        owned_by_first = partitions_ready(first, own_deployment.admin_token())
        email = next(
            candidate
            for candidate in (new_email() for _ in range(1000))
            if partition_of(USER, user_aggregate_id(candidate), partitions) in owned_by_first
        )
        assert register(first.url, email=email).status_code == 201
        assert role_in(log_in(first.url, email)) == "customer"

        first.pause()
        try:
            wait_until_partitions_split("users", [second], partitions, own_deployment.admin_token())
            make_admin(second.url, email, operator)
        finally:
            first.resume()

        # The resumed instance still holds the old state in memory and believes it owns the partition.
        login = log_in(first.url, email)
        assert login.status_code in (200, 503), login.text
        if login.status_code == 200:
            assert role_in(login) == "admin", "a login answered from the paused instance's stale state"

        # In its stale state this is a no-op (the user "is" a customer); in the log it is a change.
        withdrawn = set_role(first.url, email, "customer", operator)
        assert withdrawn.status_code in (200, 503), withdrawn.text
        expected = "customer" if withdrawn.status_code == 200 else "admin"
        assert role_in(log_in(second.url, email)) == expected, "the answer disagrees with the log"
    finally:
        first.resume()
        first.stop()
        second.stop()
