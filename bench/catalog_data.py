"""A catalog worth searching: products with varied names and descriptions, created through the catalog
gateway as an admin would, then waited for until both read models (PostgreSQL and the search index)
have applied them, so that the read figures measure reads and not a projection catching up."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from bench.client import send, session

BRANDS = (
    "Acme",
    "Northwind",
    "Contoso",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
)
ADJECTIVES = (
    "wireless", "ergonomic", "compact", "portable", "silent", "waterproof", "rechargeable", "foldable",
    "mechanical", "adjustable", "smart", "vintage", "heavy-duty", "lightweight", "premium", "modular",
)  # fmt: skip
NOUNS = (
    "mouse", "keyboard", "headphones", "monitor", "lamp", "chair", "desk", "speaker", "charger", "backpack",
    "kettle", "blender", "camera", "tripod", "router", "webcam", "microphone", "notebook", "bottle", "jacket",
    "umbrella", "watch", "drone", "scanner", "printer", "toaster", "heater", "fan", "projector", "tablet",
)  # fmt: skip
MATERIALS = ("aluminium", "bamboo", "steel", "oak", "leather", "recycled plastic", "glass", "carbon fibre")
COLOURS = ("black", "white", "red", "navy", "forest green", "graphite", "sand", "silver")
PHRASES = (
    "Built to last, with a two year warranty.",
    "Quiet enough for a shared office.",
    "Ships in recyclable packaging.",
    "A favourite of travellers and commuters.",
    "Easy to clean and easy to store.",
    "Designed with reviewers' feedback in mind.",
    "Works out of the box, no set-up needed.",
    "Energy efficient in everyday use.",
    "Tested for thousands of hours of use.",
    "Pairs with phones, tablets and laptops.",
)

# Adjective-noun pairs the first products are given, so that every two-word search term has matches
# (quick and full catalogs share their first products: the bodies are the same for every run).
FEATURED = (
    ("wireless", "keyboard"), ("ergonomic", "chair"), ("portable", "speaker"), ("waterproof", "jacket"),
    ("silent", "fan"), ("smart", "watch"), ("compact", "drone"), ("mechanical", "keyboard"),
)  # fmt: skip
# What the search figure rotates over: single words, pairs, and typos (the search is typo-tolerant).
SEARCH_TERMS = (
    *(f"{adjective} {noun}" for adjective, noun in FEATURED),
    "mouse", "headphones", "lamp", "kettle", "rechargeable", "bamboo", "graphite", "acme", "travellers",
    "wirless", "keybord", "headphnes", "monitr", "blendr",
)  # fmt: skip
FIXED_TERM = "mouse"

# The bodies of the command figures: `POST /products`, and `POST /products/{id}/stock-adjustments`.
NEW_PRODUCT = json.dumps(
    {"name": "Bench gadget", "description": "Created by the bench", "price": "19.99", "stock": 1000}
)
ADJUSTMENT = json.dumps({"delta": 1, "reason": "bench"})


def product_bodies(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`count` CreateProduct bodies, varied but the same for every run."""
    chosen = random.Random(seed)
    for n in range(count):
        noun, adjective = chosen.choice(NOUNS), chosen.choice(ADJECTIVES)
        if n < len(FEATURED):
            adjective, noun = FEATURED[n]
        name = f"{chosen.choice(BRANDS)} {adjective} {noun} {chosen.choice('ABCDEFGHKLMNPRSTVXZ')}{n % 1000}"
        description = (
            f"A {chosen.choice(COLOURS)} {adjective} {noun} in {chosen.choice(MATERIALS)}. "
            + " ".join(chosen.sample(PHRASES, 2))
        )
        price = Decimal(chosen.randrange(199, 49_999)) / 100
        yield {
            "name": name,
            "description": description,
            "price": str(price),
            "stock": chosen.randrange(0, 500),
        }


@dataclass(frozen=True)
class CreatedProducts:
    ids: list[int]
    # The highest consistency token per partition: when each is visible, every product is.
    last_tokens: list[str]


def _position(token: str) -> tuple[str, int]:
    """(topic:partition, offset) of a consistency token `topic:partition:offset`."""
    partition_key, offset = token.rsplit(":", 1)
    return partition_key, int(offset)


async def create_products(
    catalog_url: str, admin_token: str, bodies: list[dict[str, Any]], concurrency: int = 64
) -> CreatedProducts:
    """POST each body to /products with an Idempotency-Key, so that a 503 while partitions settle or a
    dropped connection can be retried; fails on anything else."""
    ids: list[int] = []
    last: dict[str, tuple[int, str]] = {}
    pending = enumerate(bodies)
    run = uuid.uuid4().hex[:8]

    async def worker(http: aiohttp.ClientSession) -> None:
        for number, body in pending:
            headers = {"Authorization": f"Bearer {admin_token}", "Idempotency-Key": f"bench-{run}-{number}"}
            answer = await send(
                http, "POST", f"{catalog_url}/products", body=body, headers=headers, attempts=20
            )
            if answer.status != 201:
                raise RuntimeError(f"creating a product answered {answer.status}: {answer.text[:500]}")
            ids.append(int(answer.json()["id"]))
            token = answer.headers["X-Consistency-Token"]
            key, offset = _position(token)
            if offset > last.get(key, (-1, ""))[0]:
                last[key] = (offset, token)

    async with session(concurrency) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return CreatedProducts(ids, [token for _, token in last.values()])


async def wait_until_visible(catalog_url: str, created: CreatedProducts, within: float) -> None:
    """Wait until the products table and the search index have both applied every created product:
    a query carrying a consistency token waits for its read model (and answers 503 after a while)."""
    deadline = time.monotonic() + within
    probes = [f"/products/{created.ids[0]}", "/products?search=bench&limit=1"]
    async with session(1) as http:
        for token in created.last_tokens:
            for path in probes:
                while True:
                    answer = await send(
                        http, "GET", f"{catalog_url}{path}", headers={"X-Consistency-Token": token}
                    )
                    if answer.status == 200:
                        break
                    if answer.status != 503 or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"GET {path} with consistency token {token} answered {answer.status} "
                            f"(waited {within:.0f}s at most): {answer.text[:500]}"
                        )
