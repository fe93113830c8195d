"""The saga's calls about one aggregate go straight to its partition's owner once an instance that
forwarded one of them has named it, and back to the base URL when that owner fails."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.tokens import ServiceTokenIssuer
from command_api.orders.saga_runner import ServiceClient
from web.service_http import Answer, ServiceHttp, Unreachable

BASE, OWNER, OTHER_OWNER = "http://127.0.0.1:9000", "http://127.0.0.1:9010", "http://127.0.0.1:9020"


class FakePeers:
    """Answers as the orders instances would: the base instance forwards partition 4's calls to the
    owner and says so; the owner answers itself, or refuses the connection once `down`."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.down: set[str] = set()
        self.owner = OWNER

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **_: Any
    ) -> Answer:
        self.sent.append(url)
        if any(url.startswith(peer) for peer in self.down):
            raise Unreachable(f"{method} {url}: refused")
        if url.startswith(BASE):
            return Answer(200, (("x-commerce-owner", self.owner),), b"{}")
        return Answer(200, (), b"{}")


def client(peers: FakePeers) -> ServiceClient:
    issuer = ServiceTokenIssuer(
        Ed25519PrivateKey.generate(), "commerce-services", "commerce", timedelta(hours=1)
    )
    return ServiceClient(cast(ServiceHttp, peers), BASE, issuer, retry_for=5)


def test_after_one_forwarded_call_the_partitions_calls_go_to_its_owner() -> None:
    peers = FakePeers()
    saga = client(peers)

    async def calls() -> None:
        await saga.call("GET", "/internal/orders/4004", partition=4)
        await saga.call("GET", "/internal/orders/5004", partition=4)
        await saga.call("GET", "/internal/orders/5005", partition=5)

    asyncio.run(calls())
    assert peers.sent == [
        f"{BASE}/internal/orders/4004",
        f"{OWNER}/internal/orders/5004",
        f"{BASE}/internal/orders/5005",  # another partition: not known yet
    ]


def test_an_owner_that_fails_is_forgotten_and_the_base_url_names_the_new_one() -> None:
    peers = FakePeers()
    saga = client(peers)

    async def calls() -> None:
        await saga.call("GET", "/internal/orders/4004", partition=4)
        peers.down.add(OWNER)
        peers.owner = OTHER_OWNER
        await saga.call("GET", "/internal/orders/5004", partition=4)
        await saga.call("GET", "/internal/orders/6004", partition=4)

    asyncio.run(calls())
    assert peers.sent == [
        f"{BASE}/internal/orders/4004",
        f"{OWNER}/internal/orders/5004",  # refused: forgotten, retried through the base URL
        f"{BASE}/internal/orders/5004",
        f"{OTHER_OWNER}/internal/orders/6004",
    ]


def test_a_call_without_a_partition_always_goes_to_the_base_url() -> None:
    peers = FakePeers()
    saga = client(peers)
    asyncio.run(saga.call("POST", "/internal/payments/4004/refund-unclaimed"))
    asyncio.run(saga.call("POST", "/internal/payments/4004/refund-unclaimed"))
    assert peers.sent == [f"{BASE}/internal/payments/4004/refund-unclaimed"] * 2
