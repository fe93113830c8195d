"""The catalog's read models as tests look at them: the live table and index, the same projections
replayed from offset 0 into a fresh table or index (a clean rebuild), a checksum to compare them, and
a steady stream of every kind of catalog command to write meanwhile."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import psycopg
from aiokafka import ConsumerRecord, TopicPartition
from elasticsearch import AsyncElasticsearch, Elasticsearch
from psycopg import sql
from psycopg.rows import dict_row

from event_schemas.registry import REGISTRY
from projectors.catalog.projection import ProductsProjection
from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.postgres_runner import apply_records, drop_read_model, ensure_schema
from projectors.runtime.replay import apply_side_by_side, end_offsets, read_range
from projectors.runtime.search_runner import create_index, index_events
from read_models.pool import make_pool
from tests.support.catalog_client import product_body
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.users_client import bearer
from tests.support.waiting import eventually


def create_many(service: HttpService, token: str, count: int) -> list[int]:
    async def create_all() -> list[int]:
        limits = asyncio.Semaphore(64)
        async with httpx.AsyncClient(base_url=service.url, headers=bearer(token), timeout=60) as client:

            async def one(index: int) -> int:
                async with limits:
                    response = await client.post("/products", json=product_body(name=f"Bulk product {index}"))
                    assert response.status_code == 201, response.text
                    product_id: int = response.json()["id"]
                    return product_id

            return await asyncio.gather(*(one(i) for i in range(count)))

    return asyncio.run(create_all())


def log_end(deployment: Deployment) -> int:
    topic = ProductSearchProjection(deployment.namespace).topic
    return sum(asyncio.run(end_offsets(deployment.servers.kafka_bootstrap, topic)).values())


def caught_up(deployment: Deployment, *projections: str) -> None:
    end = log_end(deployment)
    for projection in projections:

        def reached(projection: str = projection) -> bool:
            return deployment.catalog_offsets(projection) >= end

        eventually(reached, 120, f"{projection} to reach {end}")


def product_rows(deployment: Deployment) -> list[dict[str, Any]]:
    with psycopg.connect(deployment.database_url("catalog"), row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM products ORDER BY id").fetchall()


def search_documents(deployment: Deployment) -> dict[str, dict[str, Any]]:
    alias = ProductSearchProjection(deployment.namespace).alias
    with Elasticsearch(deployment.servers.elasticsearch_url) as es:
        es.indices.refresh(index=alias)
        hits = es.search(index=alias, size=10_000, query={"match_all": {}})["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


class SteadyWrites:
    """Commands from a few concurrent writers until stopped: each creates products, renames them,
    reprices them, restocks them, describes them anew and deletes them again, on products of its
    own, so every command is valid when it is sent (and the fields each event changes differ)."""

    KINDS = ("create", "rename", "reprice", "restock", "describe", "delete")

    def __init__(self, service_url: str, token: str, writers: int = 6) -> None:
        self._url, self._token, self._writers = service_url, token, writers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._write_all()), name="steady-writes")
        self._failure: BaseException | None = None
        self.sent: Counter[str] = Counter(dict.fromkeys(self.KINDS, 0))
        self.created: list[int] = []  # every product a 201 acknowledged

    def __enter__(self) -> SteadyWrites:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def wait_for(self, commands: int) -> None:
        def sent() -> bool:
            if self._failure is not None:
                raise self._failure
            return self.sent.total() >= commands

        eventually(sent, 30, f"{commands} commands to be answered")

    async def _write_all(self) -> None:
        try:
            async with httpx.AsyncClient(
                base_url=self._url, headers=bearer(self._token), timeout=30
            ) as client:
                await asyncio.gather(*(self._write(client, writer) for writer in range(self._writers)))
        except BaseException as failure:
            self._failure = failure
            self._stop.set()

    async def _write(self, client: httpx.AsyncClient, writer: int) -> None:
        mine: list[int] = []  # oldest first
        for step in itertools.count():
            if self._stop.is_set():
                return
            kind = self.KINDS[step % len(self.KINDS)] if mine else "create"
            some = mine[step % len(mine)] if mine else 0
            if kind == "create":
                response = await client.post("/products", json=product_body(name=f"Stream {writer}-{step}"))
            elif kind == "delete" and len(mine) > 3:
                response = await client.delete(f"/products/{mine.pop(0)}")
            elif kind == "reprice":
                response = await client.patch(f"/products/{mine[-1]}", json={"price": f"{step % 90 + 1}.99"})
            elif kind == "restock":
                response = await client.post(
                    f"/products/{some}/stock-adjustments", json={"delta": step % 7 + 1, "reason": "delivery"}
                )
            elif kind == "describe":
                response = await client.patch(f"/products/{some}", json={"description": f"Step {step}"})
            else:
                kind = "rename"
                response = await client.patch(
                    f"/products/{mine[0]}", json={"name": f"Renamed {writer}-{step}"}
                )
            assert response.status_code in (200, 201), f"{kind}: {response.status_code} {response.text}"
            if kind == "create":
                mine.append(response.json()["id"])
                self.created.append(response.json()["id"])
            self.sent[kind] += 1


def checksum(read_model: Mapping[Any, Any]) -> str:
    return hashlib.sha256(json.dumps(read_model, sort_keys=True, default=str).encode()).hexdigest()


def differences(live: Mapping[Any, Any], clean: Mapping[Any, Any]) -> str:
    only_live, only_clean = sorted(live.keys() - clean.keys()), sorted(clean.keys() - live.keys())
    differing = sorted(key for key in live.keys() & clean.keys() if live[key] != clean[key])
    samples = [f"  {key}: live {live[key]} != clean {clean[key]}" for key in differing[:3]]
    return "\n".join(
        [
            f"only live: {only_live[:10]} ({len(only_live)})",
            f"only in the clean rebuild: {only_clean[:10]} ({len(only_clean)})",
            f"different: {differing[:10]} ({len(differing)})",
            *samples,
        ]
    )


async def replayed_from_zero(
    deployment: Deployment,
    topic: str,
    apply: Callable[[TopicPartition, list[ConsumerRecord]], Awaitable[None]],
) -> None:
    bootstrap = deployment.servers.kafka_bootstrap
    await apply_side_by_side(read_range(bootstrap, topic, {}, await end_offsets(bootstrap, topic)), apply)


async def clean_index(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The search projection replayed from offset 0 into a fresh index of its own."""
    projection = ProductSearchProjection(deployment.namespace)
    async with AsyncElasticsearch(deployment.servers.elasticsearch_url) as es:
        index = await create_index(es, projection, with_alias=False)
        try:

            async def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
                await index_events(es, projection, index, [REGISTRY.from_bytes(r.value) for r in records])

            await replayed_from_zero(deployment, projection.topic, apply)
            await es.indices.refresh(index=index)
            hits = (await es.search(index=index, size=10_000, query={"match_all": {}}))["hits"]["hits"]
            return {hit["_id"]: hit["_source"] for hit in hits}
        finally:
            await es.indices.delete(index=index)


async def clean_table(deployment: Deployment) -> dict[int, dict[str, Any]]:
    """The products projection replayed from offset 0 into a fresh table of its own."""
    projection, table = ProductsProjection(deployment.namespace), "products__clean"
    async with make_pool(deployment.database_url("catalog")) as pool:
        await ensure_schema(pool, projection, table)
        try:

            async def apply(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
                async with pool.connection() as conn, conn.transaction():
                    await apply_records(conn, projection, table, table, REGISTRY, tp, records)

            await replayed_from_zero(deployment, projection.topic, apply)
            async with pool.connection() as conn:
                cursor = await conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
                return {row["id"]: row for row in await cursor.fetchall()}
        finally:
            async with pool.connection() as conn, conn.transaction():
                await drop_read_model(conn, table, table)


def live_read_model(deployment: Deployment, projection: str) -> Mapping[Any, Any]:
    if projection == "catalog":
        return {row["id"]: row for row in product_rows(deployment)}
    return search_documents(deployment)


def clean_read_model(deployment: Deployment, projection: str) -> Mapping[Any, Any]:
    return asyncio.run(clean_table(deployment) if projection == "catalog" else clean_index(deployment))
