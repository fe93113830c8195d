"""Limits on callers of login and registration, through two real instances of the users service that
share the partitions: failures per account and attempts per client address are counted once, where the
user's partition is owned, under the caller's own address (X-Forwarded-For is believed only from a
trusted proxy), and refused with 429 and Retry-After; password hashing is bounded per process (503)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from command_api.eventstore.partitioning import partition_of
from command_api.users.domain import USER, user_aggregate_id
from event_schemas import topics
from event_schemas.users import UserPasswordRehashed, UserRegistered
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events
from tests.support.processes import HttpService, wait_until_partitions_split
from tests.support.servers import Servers
from tests.support.users_client import PASSWORD, new_email

pytestmark = pytest.mark.integration

FAILURES_PER_ACCOUNT = 3
ATTEMPTS_PER_ADDRESS = 6
REGISTRATIONS_PER_ADDRESS = 3
LIMITS = {
    "COMMERCE_LOGIN_FAILURES_PER_ACCOUNT": str(FAILURES_PER_ACCOUNT),
    "COMMERCE_LOGIN_FAILURES_WINDOW_SECONDS": "900",
    "COMMERCE_LOGIN_ATTEMPTS_PER_ADDRESS": str(ATTEMPTS_PER_ADDRESS),
    "COMMERCE_LOGIN_ATTEMPTS_WINDOW_SECONDS": "3600",
    "COMMERCE_REGISTRATIONS_PER_ADDRESS": str(REGISTRATIONS_PER_ADDRESS),
    "COMMERCE_REGISTRATIONS_WINDOW_SECONDS": "3600",
    # One hash at a time per instance, and a short wait for a turn.
    "COMMERCE_PASSWORD_HASHING_CONCURRENCY": "1",
    "COMMERCE_PASSWORD_HASHING_WAIT_SECONDS": "0.05",
}
# The instances trust 127.0.0.1 (the default), as they would a reverse proxy in front of them: a test
# speaking from there names the client it stands for in X-Forwarded-For. From 127.0.0.2 it is a client
# the instances do not trust.
UNTRUSTED = "127.0.0.2"


@dataclass
class TwoInstances:
    deployment: Deployment
    first: HttpService
    second: HttpService

    @property
    def both(self) -> tuple[HttpService, HttpService]:
        return self.first, self.second

    def email_owned_by(self, instance: HttpService) -> str:
        """A fresh email whose user lives in a partition this instance owns."""
        token = self.deployment.admin_token()
        ready = httpx.get(
            f"{instance.url}/internal/partitions", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).json()["users"]["ready"]
        partitions = self.deployment.settings.kafka_partitions
        while True:
            email = new_email()
            if partition_of(USER, user_aggregate_id(email), partitions) in ready:
                return email


@pytest.fixture(scope="module")
def instances(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoInstances]:
    deployment = Deployment(servers, tmp_path_factory.mktemp("caller-limits"))
    deployment.provision()
    first = deployment.gateway("users", side="command", name="users-limited-a", env=LIMITS).start()
    second = deployment.gateway("users", side="command", name="users-limited-b", env=LIMITS).start()
    try:
        wait_until_partitions_split(
            "users", [first, second], deployment.settings.kafka_partitions, deployment.admin_token()
        )
        yield TwoInstances(deployment, first, second)
    finally:
        first.stop()
        second.stop()


def log_in(
    instance: HttpService, email: str, password: str = PASSWORD, client: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": client} if client else {}
    body = {"email": email, "password": password}
    return httpx.post(f"{instance.url}/auth/login", json=body, headers=headers, timeout=30)


def register(instance: HttpService, email: str, client: str) -> httpx.Response:
    body = {"username": "shopper", "email": email, "password": PASSWORD}
    return httpx.post(
        f"{instance.url}/auth/register", json=body, headers={"X-Forwarded-For": client}, timeout=30
    )


def assert_too_many(response: httpx.Response, window_seconds: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {"message": "Too many requests, try again later.", "error": "too_many_requests"}
    assert 0 < int(response.headers["Retry-After"]) <= window_seconds


def test_failed_logins_for_one_account_are_refused_after_the_limit_whichever_instance_they_reach(
    instances: TwoInstances,
) -> None:
    victim, bystander = new_email(), new_email()
    assert register(instances.first, victim, client="192.0.2.1").status_code == 201
    assert register(instances.first, bystander, client="192.0.2.1").status_code == 201

    # Each attempt from another address, so only the account's count can refuse them.
    failures = [
        log_in(instances.both[n % 2], victim, "wrong password", client=f"192.0.2.{10 + n}").status_code
        for n in range(FAILURES_PER_ACCOUNT)
    ]
    assert failures == [401] * FAILURES_PER_ACCOUNT
    for n, instance in enumerate(instances.both):
        assert_too_many(log_in(instance, victim, "wrong password", client=f"192.0.2.{20 + n}"), 900)
        # Even the right password is refused now: a guess that happened to be right would tell.
        assert_too_many(log_in(instance, victim, client=f"192.0.2.{30 + n}"), 900)

    # Another account, from an address that has just been refused, still logs in on either instance.
    for instance in instances.both:
        assert log_in(instance, bystander, client="192.0.2.20").status_code == 200


def test_an_unknown_email_is_limited_exactly_like_a_registered_one(instances: TwoInstances) -> None:
    unknown = new_email()
    answers = [
        log_in(instances.both[n % 2], unknown, "any password", client=f"192.0.2.{40 + n}").status_code
        for n in range(FAILURES_PER_ACCOUNT + 1)
    ]
    assert answers == [401] * FAILURES_PER_ACCOUNT + [429]


def test_a_successful_login_forgets_the_accounts_earlier_failures(instances: TwoInstances) -> None:
    email = new_email()
    assert register(instances.second, email, client="192.0.2.50").status_code == 201
    for round_ in range(3):
        for n in range(FAILURES_PER_ACCOUNT - 1):
            client = f"198.18.{round_}.{n}"
            assert log_in(instances.both[n % 2], email, "wrong password", client=client).status_code == 401
        assert log_in(instances.first, email, client=f"198.18.{round_}.99").status_code == 200


def test_login_attempts_from_one_address_are_counted_together_on_every_instance(
    instances: TwoInstances,
) -> None:
    # Accounts on both instances' partitions, each attempt sent to the other instance (and forwarded):
    # the owners count them, and only a count they share can reach the limit.
    emails = [instances.email_owned_by(instances.both[n % 2]) for n in range(ATTEMPTS_PER_ADDRESS + 1)]
    answers = [
        log_in(instances.both[(n + 1) % 2], email, "wrong password", client="203.0.113.5").status_code
        for n, email in enumerate(emails)
    ]
    assert answers == [401] * ATTEMPTS_PER_ADDRESS + [429]
    assert_too_many(log_in(instances.first, new_email(), client="203.0.113.5"), 3600)
    # A trusted proxy's X-Forwarded-For is believed: another client behind it is not refused.
    assert log_in(instances.first, new_email(), client="203.0.113.6").status_code == 401


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored_even_when_the_request_is_forwarded(
    instances: TwoInstances,
) -> None:
    emails = [instances.email_owned_by(instances.both[n % 2]) for n in range(ATTEMPTS_PER_ADDRESS + 1)]
    transport = httpx.HTTPTransport(local_address=UNTRUSTED)
    with httpx.Client(transport=transport, timeout=30) as untrusted:
        answers = [
            untrusted.post(
                # To the instance that does not own the user, which forwards it to the one that does.
                f"{instances.both[(n + 1) % 2].url}/auth/login",
                json={"email": email, "password": "wrong password"},
                # A different made-up address each time: were it believed, no address would reach the limit.
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n, email in enumerate(emails)
        ]
    assert answers == [401] * ATTEMPTS_PER_ADDRESS + [429]


def test_registrations_from_one_address_are_refused_after_the_limit(instances: TwoInstances) -> None:
    answers = [
        register(instances.both[n % 2], new_email(), client="203.0.113.77").status_code
        for n in range(REGISTRATIONS_PER_ADDRESS + 1)
    ]
    assert answers == [201] * REGISTRATIONS_PER_ADDRESS + [429]
    assert_too_many(register(instances.second, new_email(), client="203.0.113.77"), 3600)
    assert register(instances.second, new_email(), client="203.0.113.78").status_code == 201


def test_concurrent_registrations_beyond_the_hashing_bound_get_503s_never_500s(
    instances: TwoInstances,
) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{instances.first.url}/auth/register",
                        json={"username": "shopper", "email": new_email(), "password": PASSWORD},
                        headers={"X-Forwarded-For": f"198.51.100.{100 + n}"},
                    )
                    for n in range(16)
                )
            )

    responses = asyncio.run(burst())
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {201, 503}, statuses
    assert 201 in statuses and 503 in statuses, statuses
    busy = next(response for response in responses if response.status_code == 503)
    assert busy.json()["error"] == "server_busy"
    assert busy.headers["Retry-After"] == "1"


def test_with_postgresql_not_answering_login_and_registration_answer_503_within_the_timeout(
    own_deployment: Deployment,
) -> None:
    # A listener that never accepts stands in for a PostgreSQL that does not answer: connections
    # open, and then nothing comes back.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        unanswered = f"postgresql://users@127.0.0.1:{black_hole.getsockname()[1]}/users"
        env = {"COMMERCE_USERS_DATABASE_URL": unanswered, "COMMERCE_RATE_LIMIT_TIMEOUT_SECONDS": "1"}
        service = own_deployment.gateway("users", side="command", name="users-no-postgres", env=env).start()
        try:
            for route, body in (
                ("/auth/login", {"email": new_email(), "password": PASSWORD}),
                ("/auth/register", {"username": "shopper", "email": new_email(), "password": PASSWORD}),
            ):
                started = time.monotonic()
                response = httpx.post(f"{service.url}{route}", json=body, timeout=30)
                took = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "database_unavailable"
                assert response.headers["Retry-After"]
                assert took < 5, f"{route}: the 503 should come within the 1 s timeout, took {took:.1f}s"
        finally:
            service.stop()


def test_correct_logins_at_once_are_never_refused_and_an_old_hash_is_made_again_at_login(
    own_deployment: Deployment,
) -> None:
    """The account counts failures, not logins in flight; a hash of argon2-cffi's old defaults is
    rehashed with the current (OWASP) parameters at the next successful login, once."""
    email = new_email()
    old_parameters = {
        "COMMERCE_PASSWORD_HASH_MEMORY_KIB": "65536",
        "COMMERCE_PASSWORD_HASH_ITERATIONS": "3",
        "COMMERCE_PASSWORD_HASH_LANES": "4",
    }
    before = own_deployment.gateway(
        "users", side="command", name="users-old-hashes", env=old_parameters
    ).start()
    try:
        assert register(before, email, client="192.0.2.200").status_code == 201
    finally:
        before.stop()
    limited = {"COMMERCE_LOGIN_FAILURES_PER_ACCOUNT": "3", "COMMERCE_PASSWORD_HASHING_WAIT_SECONDS": "60"}
    service = own_deployment.gateway("users", side="command", name="users-owasp-hashes", env=limited).start()
    try:

        async def at_once() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            f"{service.url}/auth/login",
                            json={"email": email, "password": PASSWORD},
                            headers={"X-Forwarded-For": f"198.51.100.{200 + n}"},
                        )
                        for n in range(16)
                    )
                )

        statuses = [response.status_code for response in asyncio.run(at_once())]
        assert statuses == [200] * 16, statuses
        assert log_in(service, email, client="198.51.100.250").status_code == 200
    finally:
        service.stop()
    log = committed_events(
        own_deployment.servers.kafka_bootstrap, topics.in_namespace(own_deployment.namespace, topics.USERS)
    )
    hashes = [
        event.password_hash for event, _ in log if isinstance(event, UserRegistered | UserPasswordRehashed)
    ]
    assert hashes[0].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert len(hashes) == 2, "rehashed once, however many logins saw the old hash"
    assert hashes[1].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
