"""The users service survives restarts, rebuilds its read model from the log, runs as several
instances, and rides out a Kafka outage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.deployment import Deployment
from tests.support.processes import HttpService, wait_until_partitions_split
from tests.support.users_client import bearer, log_in, new_email, register, token_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def read_model_rows(deployment: Deployment) -> list[dict[str, Any]]:
    with psycopg.connect(deployment.database_url("users"), row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM users ORDER BY id").fetchall()


def test_a_restarted_service_rebuilds_its_state_from_kafka_alone(own_deployment: Deployment) -> None:
    first = own_deployment.gateway("users", side="command", name="users-before-restart").start()
    emails = [new_email() for _ in range(5)]
    ids = [register(first.url, email=email).json()["user"]["id"] for email in emails]
    first.stop()

    restarted = own_deployment.gateway("users", side="command", name="users-after-restart").start()
    try:
        for email in emails:
            assert log_in(restarted.url, email).status_code == 200
        assert register(restarted.url, email=emails[0]).status_code == 409
        newcomer = register(restarted.url).json()["user"]["id"]
        assert newcomer not in ids
    finally:
        restarted.stop()


def test_a_dropped_read_model_is_rebuilt_from_the_log_row_for_row(own_deployment: Deployment) -> None:
    service = own_deployment.gateway("users", name="users-for-rebuild").start()
    projector = own_deployment.projector("users").start()
    try:
        tokens = []
        for _ in range(8):
            email = new_email()
            consistency = register(service.url, email=email).headers["X-Consistency-Token"]
            tokens.append((token_for(service.url, email), consistency))
        for token, consistency in tokens:
            response = httpx.get(
                f"{service.url}/users/me", headers=bearer(token) | {"X-Consistency-Token": consistency}
            )
            assert response.status_code == 200, response.text
        before = read_model_rows(own_deployment)
        assert len(before) == 8

        projector.stop()
        own_deployment.run_module("projectors", "reset", "users")
        assert read_model_rows(own_deployment) == []

        projector.start()
        eventually(lambda: len(read_model_rows(own_deployment)) == 8, 60, "the replay to restore 8 users")
        assert read_model_rows(own_deployment) == before
    finally:
        projector.stop()
        service.stop()


def test_two_instances_split_the_partitions_and_never_both_accept_one_email(
    own_deployment: Deployment,
) -> None:
    first = own_deployment.gateway("users", side="command", name="users-instance-a").start()
    second = own_deployment.gateway("users", side="command", name="users-instance-b").start()
    try:
        wait_until_partitions_split(
            "users", [first, second], own_deployment.settings.kafka_partitions, own_deployment.admin_token()
        )

        for _ in range(3):
            email = new_email()

            async def race(email: str = email) -> list[int]:
                body = {"username": "racer", "email": email, "password": "correct horse battery"}
                async with httpx.AsyncClient(timeout=60) as client:
                    responses = await asyncio.gather(
                        *(
                            client.post(f"{(first, second)[i % 2].url}/auth/register", json=body)
                            for i in range(20)
                        )
                    )
                return sorted(r.status_code for r in responses)

            assert asyncio.run(race()) == [201] + [409] * 19
            # Whichever instance gets the login, the owner answers it.
            assert log_in(first.url, email).status_code == log_in(second.url, email).status_code == 200
    finally:
        first.stop()
        second.stop()


@pytest.mark.disruptive
def test_with_kafka_down_commands_get_a_quick_503_and_work_again_when_it_returns(
    own_deployment: Deployment,
) -> None:
    running = own_deployment.gateway("users", side="command", name="users-through-outage").start()
    before = new_email()
    assert register(running.url, email=before).status_code == 201
    own_deployment.servers.stop_kafka()
    started_during_outage = own_deployment.gateway("users", side="command", name="users-started-in-outage")
    try:
        for service in (running, started_during_outage.start()):
            started = time.monotonic()
            during = register(service.url)
            took = time.monotonic() - started
            assert during.status_code == 503, during.text
            assert during.json()["error"] == "service_unavailable"
            assert during.headers["Retry-After"]
            assert took < 15, f"a 503 should come quickly, took {took:.1f}s"
    finally:
        own_deployment.servers.start_kafka()
    try:
        for service in (running, started_during_outage):
            after = new_email()

            def registered(service: HttpService = service, after: str = after) -> bool:
                return register(service.url, email=after).status_code in (201, 409)

            eventually(registered, 120, f"registration through {service.name} to work again", every=1)

            # Each partition's writer recovers on its own once Kafka is back: the one holding the account
            # registered before the outage may answer a moment after the new email's does.
            def logged_in(service: HttpService = service) -> bool:
                return log_in(service.url, before).status_code == 200

            eventually(logged_in, 60, f"login through {service.name} to work again", every=1)
            assert log_in(service.url, after).status_code == 200
    finally:
        running.stop()
        started_during_outage.stop()
