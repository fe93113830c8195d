"""The catalog's read models survive a projector crash, can be rebuilt while they serve, and the
search index rides out an Elasticsearch outage."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import psycopg
import pytest
from elasticsearch import Elasticsearch
from psycopg.rows import dict_row

from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.replay import end_offsets
from tests.support.catalog_client import created, get_product, list_products, product_body
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.users_client import bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


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


def test_a_projector_killed_mid_replay_resumes_without_duplicates_or_gaps(own_deployment: Deployment) -> None:
    own_deployment.projector_max_batch = 10  # many small transactions, so the kill lands mid-replay
    service = own_deployment.gateway("catalog", side="command", name="catalog-commands").start()
    try:
        ids = create_many(service, own_deployment.admin_token(), 3000)
    finally:
        service.stop()
    projector = own_deployment.projector("catalog", "catalog-search").start()
    end = log_end(own_deployment)
    eventually(
        lambda: own_deployment.catalog_offsets("catalog") > 0,
        60,
        "the projector to start applying",
        every=0.01,
    )
    projector.kill()  # SIGKILL: no chance to finish the batch in hand
    assert own_deployment.catalog_offsets("catalog") < end, "the kill came too late to interrupt the replay"

    projector.start()
    try:
        caught_up(own_deployment, "catalog", "catalog-search")
        rows = product_rows(own_deployment)
        assert sorted(row["id"] for row in rows) == sorted(ids)
        assert all(row["version"] == 1 and row["stock"] == 10 for row in rows)
        assert sorted(int(key) for key in search_documents(own_deployment)) == sorted(ids)
    finally:
        projector.stop()


def test_a_rebuild_replaces_the_read_models_while_they_keep_serving(own_deployment: Deployment) -> None:
    projector = own_deployment.projector("catalog", "catalog-search").start()
    service = own_deployment.gateway("catalog", name="catalog-during-rebuild").start()
    token = own_deployment.admin_token()
    try:
        ids = create_many(service, token, 300)
        for product_id in ids[:30]:
            httpx.patch(f"{service.url}/products/{product_id}", json={"price": "5.55"}, headers=bearer(token))
        for product_id in ids[30:40]:
            httpx.delete(f"{service.url}/products/{product_id}", headers=bearer(token))
        caught_up(own_deployment, "catalog", "catalog-search")
        rows_before, documents_before = product_rows(own_deployment), search_documents(own_deployment)

        answers: list[int] = []
        stop = threading.Event()

        def keep_reading() -> None:
            with httpx.Client(base_url=service.url, timeout=30) as client:
                while not stop.is_set():
                    answers.append(client.get("/products", params={"limit": 50}).status_code)
                    answers.append(client.get("/products", params={"search": "bulk product"}).status_code)

        reader = threading.Thread(target=keep_reading)
        reader.start()
        try:
            own_deployment.run_module("projectors", "rebuild", "catalog")
            own_deployment.run_module("projectors", "rebuild", "catalog-search")
        finally:
            stop.set()
            reader.join()
        assert answers and set(answers) == {200}, f"queries during the rebuild answered {set(answers)}"
        assert product_rows(own_deployment) == rows_before
        assert search_documents(own_deployment) == documents_before

        # The live projectors go on writing into the rebuilt read models.
        product, consistency = created(service.url, token, name="After the rebuild")
        assert get_product(service.url, product["id"], consistency).status_code == 200
        assert [p["id"] for p in list_products(service.url, consistency, search="after rebuild").json()] == [
            product["id"]
        ]
    finally:
        service.stop()
        projector.stop()


@pytest.mark.disruptive
def test_search_answers_503_while_elasticsearch_is_down_and_the_index_catches_up(
    own_deployment: Deployment,
) -> None:
    projector = own_deployment.projector("catalog", "catalog-search").start()
    service = own_deployment.gateway("catalog", name="catalog-through-outage").start()
    token = own_deployment.admin_token()
    before, _ = created(service.url, token, name="Sturdy Lamp")
    own_deployment.servers.stop_elasticsearch()
    try:
        started = time.monotonic()
        down = list_products(service.url, None, search="lamp")
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "search_unavailable"
        assert time.monotonic() - started < 10
        during, consistency = created(service.url, token, name="Quiet Fan")
        assert get_product(service.url, during["id"], consistency).status_code == 200
        assert list_products(service.url, None).status_code == 200
    finally:
        own_deployment.servers.start_elasticsearch()
    try:

        def fans() -> list[str] | None:
            response = list_products(service.url, None, search="fan")
            return [p["name"] for p in response.json()] if response.status_code == 200 else None

        found = eventually(fans, 120, "the index to catch up after Elasticsearch came back", every=1)
        assert found == ["Quiet Fan"]
        assert [p["id"] for p in list_products(service.url, None, search="lamp").json()] == [before["id"]]
    finally:
        service.stop()
        projector.stop()


@pytest.mark.disruptive
def test_reads_answer_503_while_postgresql_is_down_and_the_read_model_catches_up(
    own_deployment: Deployment,
) -> None:
    projector = own_deployment.projector("catalog", "catalog-search").start()
    service = own_deployment.gateway("catalog", name="catalog-without-postgres").start()
    token = own_deployment.admin_token()
    before, consistency = created(service.url, token, name="Oak Shelf")
    assert get_product(service.url, before["id"], consistency).status_code == 200
    own_deployment.servers.stop_postgres()
    try:
        started = time.monotonic()
        down = get_product(service.url, before["id"])
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "database_unavailable"
        assert time.monotonic() - started < 15
        # Commands do not need PostgreSQL: Kafka is the source of truth.
        during, consistency = created(service.url, token, name="Pine Shelf")
    finally:
        own_deployment.servers.start_postgres()
    try:

        def readable() -> bool:
            return get_product(service.url, during["id"]).status_code == 200

        eventually(readable, 120, "the products read model to catch up after PostgreSQL came back", every=1)
        assert get_product(service.url, during["id"], consistency).json()["name"] == "Pine Shelf"
    finally:
        service.stop()
        projector.stop()
