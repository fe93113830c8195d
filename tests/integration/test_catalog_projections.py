"""The catalog's read models survive a projector crash, can be rebuilt while they serve and while
they are written, and the search index rides out an Elasticsearch outage."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import httpx
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from elasticsearch import AsyncElasticsearch, Elasticsearch

from event_schemas.catalog import ProductCreated
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.registry import REGISTRY
from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.dead_letters import DeadLetterTopic
from projectors.runtime.offsets import store_offset
from projectors.runtime.rebuild import rebuild_index
from projectors.runtime.search_runner import SearchProjectionRunner
from read_models.pool import make_pool
from tests.support.catalog_client import created, get_product, list_products
from tests.support.catalog_read_models import (
    SteadyWrites,
    caught_up,
    checksum,
    clean_read_model,
    create_many,
    differences,
    live_read_model,
    log_end,
    product_rows,
    replayed_from_zero,
    search_documents,
)
from tests.support.deployment import Deployment
from tests.support.kafka_log import consumer_record
from tests.support.users_client import bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize("projection", ["catalog-search", "catalog"])
def test_a_rebuild_while_writes_go_on_ends_equal_to_a_clean_rebuild(
    own_deployment: Deployment, projection: str
) -> None:
    """Products are created, changed and deleted while the rebuild replays and swaps, and the live
    projector goes on writing afterwards: the read model then holds what a replay from offset 0 into a
    fresh table or index holds, row for row and document for document."""
    projector = own_deployment.projector(projection).start()
    service = own_deployment.gateway("catalog", side="command", name="catalog-commands").start()
    token = own_deployment.admin_token()
    try:
        create_many(service, token, 500)  # so that the rebuild's first pass takes a while
        with SteadyWrites(service.url, token) as writes:
            writes.wait_for(100)
            before = writes.sent.copy()
            own_deployment.run_module("projectors", "rebuild", projection)
            during = writes.sent - before
            writes.wait_for(writes.sent.total() + 50)  # the live projector goes on in the new one
        assert all(during[kind] for kind in SteadyWrites.KINDS), f"commands during the rebuild: {during}"
        caught_up(own_deployment, projection)

        live, clean = (
            live_read_model(own_deployment, projection),
            clean_read_model(own_deployment, projection),
        )
        assert len(live) >= 500
        assert checksum(live) == checksum(clean), differences(live, clean)
    finally:
        service.stop()
        projector.stop()


def equal_to_a_clean_rebuild(deployment: Deployment) -> None:
    """Once caught up, both read models hold exactly what a replay from offset 0 gives."""
    caught_up(deployment, "catalog", "catalog-search")
    for projection in ("catalog", "catalog-search"):
        live, clean = live_read_model(deployment, projection), clean_read_model(deployment, projection)
        assert checksum(live) == checksum(clean), f"{projection}:\n{differences(live, clean)}"


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
        with SteadyWrites(service.url, token) as writes:  # every kind of command goes on meanwhile
            writes.wait_for(60)
    finally:
        own_deployment.servers.start_elasticsearch()
    try:

        def fans() -> list[str] | None:
            response = list_products(service.url, None, search="fan")
            return [p["name"] for p in response.json()] if response.status_code == 200 else None

        found = eventually(fans, 120, "the index to catch up after Elasticsearch came back", every=1)
        assert found == ["Quiet Fan"]
        assert [p["id"] for p in list_products(service.url, None, search="lamp").json()] == [before["id"]]
        equal_to_a_clean_rebuild(own_deployment)
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
        with SteadyWrites(service.url, token) as writes:
            writes.wait_for(60)
    finally:
        own_deployment.servers.start_postgres()
    try:

        def readable() -> bool:
            return get_product(service.url, during["id"]).status_code == 200

        eventually(readable, 120, "the products read model to catch up after PostgreSQL came back", every=1)
        assert get_product(service.url, during["id"], consistency).json()["name"] == "Pine Shelf"
        equal_to_a_clean_rebuild(own_deployment)
    finally:
        service.stop()
        projector.stop()


def test_a_rebuild_leaves_the_alias_naming_its_index_alone_when_the_live_projector_created_one_meanwhile(
    own_deployment: Deployment,
) -> None:
    """A rebuild that starts before the alias exists, while the live projector creates its first index
    under it (as it does whenever it finds none): after the swap the alias names the rebuilt index
    alone, and a search through it finds each product once."""
    service = own_deployment.gateway("catalog", side="command", name="catalog-commands").start()
    try:
        ids = create_many(service, own_deployment.admin_token(), 40)
    finally:
        service.stop()
    projection = ProductSearchProjection(own_deployment.namespace)
    documents = projection.fold({}, logged_events(own_deployment))
    live_index = f"{projection.alias}-of-the-live-projector"
    created: list[str] = []

    def live_projector_starts_meanwhile(line: str) -> None:
        """The rebuild's progress (its index exists, the replay is under way): the live projector's
        first index appears, under the alias, holding every product."""
        if created:
            return
        with Elasticsearch(own_deployment.servers.elasticsearch_url) as es:
            es.indices.create(
                index=live_index,
                mappings=dict(projection.mapping),
                settings=dict(projection.settings),
                aliases={projection.alias: {}},
            )
            for key, document in documents.items():
                es.index(index=live_index, id=key, document=document)
        created.append(live_index)

    async def rebuild() -> None:
        async with (
            make_pool(own_deployment.database_url("catalog")) as pool,
            AsyncElasticsearch(own_deployment.servers.elasticsearch_url) as es,
        ):
            await rebuild_index(
                es,
                pool,
                projection,
                own_deployment.servers.kafka_bootstrap,
                REGISTRY,
                live_projector_starts_meanwhile,
            )

    asyncio.run(rebuild())
    assert created, "the rebuild reported no progress, so the live projector's index was never created"
    with Elasticsearch(own_deployment.servers.elasticsearch_url) as es:
        named = list(es.indices.get_alias(name=projection.alias))
        es.indices.refresh(index=projection.alias)
        hits = es.search(index=projection.alias, size=1000, query={"match_all": {}})["hits"]["hits"]
        assert len(named) == 1 and named != [live_index], f"the alias names {named}"
        assert not es.indices.exists(index=live_index), "the index the alias named before is left behind"
    assert sorted(int(hit["_id"]) for hit in hits) == sorted(ids)


def logged_events(deployment: Deployment) -> list[Event]:
    """Every event of the catalog topic, partition after partition."""
    topic = ProductSearchProjection(deployment.namespace).topic
    events: list[Event] = []

    async def collect(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        events.extend(REGISTRY.from_bytes(record.value) for record in records)

    asyncio.run(replayed_from_zero(deployment, topic, collect))
    return events


def test_the_search_projector_drops_records_below_its_stored_offset(own_deployment: Deployment) -> None:
    """Whatever hands it a batch: the index is written only with the records from the stored offset on
    (those below it are in the index already, or were skipped by an operator)."""
    projection = ProductSearchProjection(own_deployment.namespace)
    tp = TopicPartition(projection.topic, 0)
    batch = [consumer_record(tp, offset, product_created(1001 + offset)) for offset in range(3)]

    async def apply_from_offset_2() -> None:
        async with (
            make_pool(own_deployment.database_url("catalog")) as pool,
            AsyncElasticsearch(own_deployment.servers.elasticsearch_url) as es,
        ):
            runner = SearchProjectionRunner(
                projection, es, pool, "", REGISTRY, "search-test", cast(DeadLetterTopic, None)
            )
            await runner.prepare()
            await store_offset(pool, projection.name, tp, 2)
            await runner.apply_batch(tp, batch, 3)

    asyncio.run(apply_from_offset_2())
    assert sorted(search_documents(own_deployment)) == ["1003"]
    assert own_deployment.catalog_offsets(projection.name) == 3


def product_created(product_id: int) -> ProductCreated:
    return ProductCreated(
        aggregate_id=str(product_id),
        aggregate_version=1,
        occurred_at=datetime.now(UTC),
        product_id=product_id,
        name=f"Product {product_id}",
        description="Handed straight to the projector",
        price=Money(amount=Decimal("4.20")),
        stock=1,
    )
