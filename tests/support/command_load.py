"""A steady stream of `POST /products` for the fault tests, every answer timed, and the log's account
of what was created."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from event_schemas.catalog import ProductCreated
from tests.support.catalog_client import product_body
from tests.support.kafka_log import committed_events
from tests.support.users_client import bearer


@dataclass(frozen=True)
class Answer:
    sent: float
    took: float
    status: int  # 0: no answer at all (a client timeout or a dropped connection)
    product_id: int | None

    @property
    def answered(self) -> float:
        return self.sent + self.took


async def steady_load(url: str, token: str, per_second: float, done: Callable[[], bool]) -> list[Answer]:
    """`POST /products` at `per_second` until `done()`, every answer awaited. One event loop, not
    a thread per request: hundreds of threads in flight starve each other on two cores, and the test
    would measure its own queueing. Idle connections are dropped after 1 s, well before the server's
    5 s keep-alive ends: a request sent on a connection the server is closing gets no answer."""
    answers: list[Answer] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=1)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def command() -> None:
            sent = time.monotonic()
            try:
                response = await client.post(f"{url}/products", json=product_body(), headers=bearer(token))
                status = response.status_code
                product_id = response.json()["id"] if status == 201 else None
            except httpx.HTTPError:
                status, product_id = 0, None
            answers.append(Answer(sent, time.monotonic() - sent, status, product_id))

        in_flight: set[asyncio.Task[None]] = set()
        start, sent = time.monotonic(), 0
        while not done():
            await asyncio.sleep(max(0.0, start + sent / per_second - time.monotonic()))
            task = asyncio.create_task(command())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        await asyncio.gather(*in_flight)
    return answers


def created_products(bootstrap: str, topic: str) -> Counter[str]:
    """How many ProductCreated each product has in the committed log."""
    return Counter(
        event.aggregate_id
        for event, _ in committed_events(bootstrap, topic)
        if isinstance(event, ProductCreated)
    )
