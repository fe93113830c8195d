"""How long a reader waits to see a command: a probe sends `POST /products` every ~50 ms and, once it
is answered, asks `GET /products/{id}` with the command's consistency token, which the query side holds
until the products projection has applied it. The time from the command's answer to the read's 200 is
the projection lag a client sees."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass

import aiohttp

from bench.client import send, session

PROBE_EVERY = 0.05


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class Visibility:
    probes: int
    failures: int
    p50_ms: float
    p99_ms: float
    command_p50_ms: float
    command_p99_ms: float


async def _probe(
    http: aiohttp.ClientSession, catalog_url: str, headers: dict[str, str]
) -> tuple[float, float]:
    """(command seconds, visibility seconds) of one new product."""
    body = {
        "name": f"Probe {uuid.uuid4().hex[:8]}",
        "description": "Measures how soon a command is visible",
        "price": "9.99",
        "stock": 1,
    }
    sent = time.perf_counter()
    created = await send(http, "POST", f"{catalog_url}/products", body=body, headers=headers)
    answered = time.perf_counter()
    if created.status != 201:
        raise RuntimeError(f"probe command answered {created.status}: {created.text[:300]}")
    url = f"{catalog_url}/products/{created.json()['id']}"
    consistency = {"X-Consistency-Token": created.headers["X-Consistency-Token"]}
    while True:  # a 503 means the query side gave up waiting; the lag is then longer than its wait
        read = await send(http, "GET", url, headers=consistency)
        if read.status == 200:
            return answered - sent, time.perf_counter() - answered
        if read.status != 503:
            raise RuntimeError(f"probe read answered {read.status}: {read.text[:300]}")


async def probe_visibility(catalog_url: str, admin_token: str, seconds: float) -> Visibility:
    """Start a probe every PROBE_EVERY seconds for `seconds`, then wait for the last ones."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with session(200) as http:
        probes: list[asyncio.Task[tuple[float, float]]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            probes.append(asyncio.create_task(_probe(http, catalog_url, headers)))
            await asyncio.sleep(PROBE_EVERY)
        outcomes = await asyncio.gather(*probes, return_exceptions=True)
    measured = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    if not measured:
        raise RuntimeError(f"every probe failed; the first: {outcomes[0]!r}")
    commands = [command for command, _ in measured]
    visible = [visibility for _, visibility in measured]
    return Visibility(
        probes=len(outcomes),
        failures=len(outcomes) - len(measured),
        p50_ms=percentile(visible, 0.5) * 1000,
        p99_ms=percentile(visible, 0.99) * 1000,
        command_p50_ms=percentile(commands, 0.5) * 1000,
        command_p99_ms=percentile(commands, 0.99) * 1000,
    )
