"""A record a projector cannot apply parks its partition, not the read model: the other partitions go
on, the record goes to the dead-letter topic with its reason, `status` and the metrics show it, and
the operator's `skip` or `retry` moves the partition on. The records are appended straight to the
catalog topic, as a faulty or hostile producer would, past the HTTP edge's checks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from event_schemas import topics
from event_schemas.catalog import ProductCreated
from event_schemas.money import Money
from event_schemas.registry import REGISTRY
from projectors.catalog.search_index import ProductSearchProjection
from read_models.catalog import product_index_alias
from tests.support.catalog_read_models import live_read_model
from tests.support.deployment import Deployment
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

Headers = list[tuple[str, bytes]]


def catalog_topic(deployment: Deployment) -> str:
    return topics.in_namespace(deployment.namespace, topics.CATALOG)


def product_created(product_id: int, name: str) -> tuple[bytes, Headers]:
    event = ProductCreated(
        aggregate_id=str(product_id),
        aggregate_version=1,
        occurred_at=datetime.now(UTC),
        product_id=product_id,
        name=name,
        description="Appended past the edge",
        price=Money(amount=Decimal("9.99")),
        stock=3,
    )
    return REGISTRY.to_bytes(event), REGISTRY.headers(event)


def unknown_event(product_id: int) -> tuple[bytes, Headers]:
    """An event from a newer code base than the projector's."""
    value = orjson.dumps(
        {
            "event_id": "00000000-0000-4000-8000-000000000001",
            "event_type": "ProductTeleported",
            "schema_version": 1,
            "aggregate_type": "Product",
            "aggregate_id": str(product_id),
            "aggregate_version": 2,
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": {"product_id": product_id, "galaxy": "far away"},
        }
    )
    return value, [("event_type", b"ProductTeleported"), ("schema_version", b"1")]


def append(deployment: Deployment, partition: int, product_id: int, record: tuple[bytes, Headers]) -> int:
    """Append one record to a partition of the catalog topic; its offset."""

    async def send() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=deployment.servers.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            value, headers = record
            sent = await producer.send_and_wait(
                catalog_topic(deployment),
                value,
                key=str(product_id).encode(),
                partition=partition,
                headers=headers,
            )
            offset: int = sent.offset
            return offset
        finally:
            await producer.stop()

    return asyncio.run(send())


def append_in_transactions(
    deployment: Deployment, partition: int, records: list[tuple[int, tuple[bytes, Headers]]]
) -> list[int]:
    """Append records to a partition each in a transaction of its own, as the command side writes
    them (each is followed by its transaction's commit marker, which takes an offset); their offsets."""

    async def send() -> list[int]:
        producer = AIOKafkaProducer(
            bootstrap_servers=deployment.servers.kafka_bootstrap,
            transactional_id=f"{deployment.namespace}-dead-letter-test",
        )
        await producer.start()
        try:
            offsets: list[int] = []
            for product_id, (value, headers) in records:
                async with producer.transaction():
                    sent = await producer.send_and_wait(
                        catalog_topic(deployment),
                        value,
                        key=str(product_id).encode(),
                        partition=partition,
                        headers=headers,
                    )
                offsets.append(sent.offset)
            return offsets
        finally:
            await producer.stop()

    return asyncio.run(send())


def dead_letters(deployment: Deployment) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every record of the catalog topic's dead-letter topic: value and headers."""

    async def read() -> list[tuple[bytes, dict[str, bytes]]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=deployment.servers.kafka_bootstrap)
        await consumer.start()
        try:
            topic = topics.dead_letters(catalog_topic(deployment))
            partitions = [TopicPartition(topic, p) for p in range(deployment.settings.kafka_partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[tuple[bytes, dict[str, bytes]]] = []
            for tp in partitions:
                consumer.seek(tp, 0)
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    found += [(r.value, dict(r.headers)) for r in batch.get(tp, [])]
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def catalog_rows(deployment: Deployment, table: str, query: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of a query on `table`, none while the projector has not created it."""
    with psycopg.connect(deployment.database_url("catalog"), row_factory=dict_row) as conn:
        if conn.execute("SELECT to_regclass(%s) AS found", (table,)).fetchone() == {"found": None}:
            return []
        return conn.execute(query, params).fetchall()


def product_ids(deployment: Deployment) -> set[int]:
    return {row["id"] for row in catalog_rows(deployment, "products", "SELECT id FROM products")}


def indexed(deployment: Deployment, product_id: int) -> bool:
    with Elasticsearch(deployment.servers.elasticsearch_url) as es:
        alias = ProductSearchProjection(deployment.namespace).alias
        return bool(es.exists(index=alias, id=str(product_id)))


def parked(deployment: Deployment, projection: str) -> list[dict[str, Any]]:
    """The projection's records still parked."""
    return catalog_rows(
        deployment,
        "projection_dead_letters",
        "SELECT * FROM projection_dead_letters WHERE projection = %s AND resolved_at IS NULL",
        projection,
    )


def stored_offset(deployment: Deployment, projection: str, partition: int) -> int:
    rows = catalog_rows(
        deployment,
        "projection_offsets",
        "SELECT next_offset FROM projection_offsets WHERE projection = %s AND partition = %s",
        projection,
        partition,
    )
    return int(rows[0]["next_offset"]) if rows else 0


def projectors_command(deployment: Deployment, *arguments: str) -> str:
    """`python -m projectors ...` as an operator runs it; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "projectors", *arguments],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def metric(port: int, name: str, **labels: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_a_record_the_projectors_cannot_apply_parks_its_partition_while_the_others_go_on(
    own_deployment: Deployment,
) -> None:
    port = free_port()
    projector = own_deployment.projector(
        "catalog", "catalog-search", env={"COMMERCE_PROJECTOR_METRICS_PORT": str(port)}
    ).start()
    try:
        append(own_deployment, 0, 101, product_created(101, "Before the poison"))
        poison = unknown_event(101)
        poison_offset = append(own_deployment, 0, 101, poison)

        for projection in ("catalog", "catalog-search"):

            def parked_at_poison(projection: str = projection) -> list[dict[str, Any]]:
                projector.ensure_running()
                return [
                    row
                    for row in parked(own_deployment, projection)
                    if (row["partition"], row["record_offset"]) == (0, poison_offset)
                ]

            [row] = eventually(parked_at_poison, 60, f"{projection} to park partition 0 at {poison_offset}")
            assert (row["event_type"], row["error_class"]) == ("ProductTeleported", "UnknownEvent")
            assert "ProductTeleported" in row["reason"]
            # Exactly up to the poison: the record before it is applied, nothing past it.
            assert stored_offset(own_deployment, projection, 0) == poison_offset
        assert 101 in product_ids(own_deployment) and indexed(own_deployment, 101)

        behind = append(own_deployment, 0, 102, product_created(102, "Behind the poison"))
        append(own_deployment, 1, 201, product_created(201, "In another partition"))
        eventually(lambda: 201 in product_ids(own_deployment), 60, "a product of partition 1 in the table")
        eventually(lambda: indexed(own_deployment, 201), 60, "a product of partition 1 in the index")
        assert 102 not in product_ids(own_deployment), "a parked partition applied a record past its poison"
        assert not indexed(own_deployment, 102), "a parked partition indexed a record past its poison"

        status = projectors_command(own_deployment, "status")
        parked_lines = [line for line in status.splitlines() if "parked at" in line]
        assert len(parked_lines) == 2, status
        assert all(
            f"parked at {poison_offset} (ProductTeleported, attempt 1): UnknownEvent" in line
            for line in parked_lines
        ), status

        letters = dead_letters(own_deployment)
        assert sorted(headers["dead_letter.projection"] for _, headers in letters) == [
            b"catalog",
            b"catalog-search",
        ]
        for value, headers in letters:
            assert value == poison[0]
            assert headers["event_type"] == b"ProductTeleported"  # the original headers, kept
            assert headers["dead_letter.topic"] == catalog_topic(own_deployment).encode()
            assert (headers["dead_letter.partition"], headers["dead_letter.offset"]) == (
                b"0",
                str(poison_offset).encode(),
            )
            assert headers["dead_letter.error"] == b"UnknownEvent"
            assert b"ProductTeleported" in headers["dead_letter.reason"]

        assert metric(port, "projector_parked_partitions", projection="catalog") == 1
        assert metric(port, "projector_dead_letters_total", projection="catalog") == 1
        assert metric(port, "projector_parked_partitions", projection="catalog-search") == 1
        eventually(
            lambda: metric(port, "projector_lag_records", projection="catalog", partition="0") == 2,
            30,
            "the lag of the parked partition (its poison and the record behind it) in the metrics",
        )

        answer = projectors_command(own_deployment, "skip", "catalog", "0")
        assert f"offset {poison_offset} (ProductTeleported) requested" in answer, answer
        projectors_command(own_deployment, "skip", "catalog-search", "0")
        eventually(lambda: 102 in product_ids(own_deployment), 30, "the record behind a skipped poison")
        eventually(lambda: indexed(own_deployment, 102), 30, "the record behind a skipped poison, indexed")
        for projection in ("catalog", "catalog-search"):

            def past_behind(projection: str = projection) -> bool:
                return stored_offset(own_deployment, projection, 0) > behind

            eventually(past_behind, 30, f"{projection} past partition 0's records")
            assert parked(own_deployment, projection) == []
        assert "parked at" not in projectors_command(own_deployment, "status")
        assert metric(port, "projector_parked_partitions", projection="catalog") == 0
        assert len(dead_letters(own_deployment)) == 2, "a skipped record stays in the dead-letter topic"
    finally:
        projector.stop()


def test_retry_applies_a_parked_record_once_its_cause_is_gone_and_a_restart_keeps_a_partition_parked(
    own_deployment: Deployment,
) -> None:
    projector = own_deployment.projector("catalog").start()
    try:
        eventually(
            lambda: catalog_rows(own_deployment, "products", "SELECT 1 AS ready"), 60, "the products table"
        )
        with psycopg.connect(own_deployment.database_url("catalog"), autocommit=True) as conn:
            # The cause an operator can remove: say, a constraint a migration added too early.
            conn.execute("ALTER TABLE products ADD CONSTRAINT no_lamps CHECK (name NOT LIKE '%Lamp%')")
        poison_offset = append(own_deployment, 2, 301, product_created(301, "Forbidden Lamp"))
        # And the issue's own case: PostgreSQL text cannot hold a NUL byte.
        nul_offset = append(own_deployment, 3, 401, product_created(401, "nul\x00name"))

        def parked_at(partition: int, offset: int, attempts: int) -> dict[str, Any] | None:
            projector.ensure_running()
            for row in parked(own_deployment, "catalog"):
                key = (row["partition"], row["record_offset"], row["attempts"], row["decision"])
                if key == (partition, offset, attempts, None):
                    return row
            return None

        row = eventually(lambda: parked_at(2, poison_offset, 1), 60, "partition 2 parked at the lamp")
        assert row["error_class"] == "CheckViolation" and "no_lamps" in row["reason"]
        assert "Forbidden Lamp" not in row["reason"], "the reason quotes the refused row"
        row = eventually(lambda: parked_at(3, nul_offset, 1), 60, "partition 3 parked at the NUL byte")
        assert row["error_class"] == "DataError" and "NUL" in row["reason"]

        projectors_command(own_deployment, "retry", "catalog", "2")
        eventually(lambda: parked_at(2, poison_offset, 2), 30, "a retry that fails again to park again")
        assert 301 not in product_ids(own_deployment)

        with psycopg.connect(own_deployment.database_url("catalog"), autocommit=True) as conn:
            conn.execute("ALTER TABLE products DROP CONSTRAINT no_lamps")
        projectors_command(own_deployment, "retry", "catalog", "2")
        eventually(lambda: 301 in product_ids(own_deployment), 30, "the retried record in the read model")
        assert [row["partition"] for row in parked(own_deployment, "catalog")] == [3]
        published = [
            (headers["dead_letter.partition"], headers["dead_letter.offset"])
            for _, headers in dead_letters(own_deployment)
        ]
        assert sorted(published) == [(b"2", str(poison_offset).encode()), (b"3", str(nul_offset).encode())], (
            "a record parked twice is published once"
        )

        skipped = subprocess.run(
            [sys.executable, "-m", "projectors", "skip", "catalog", "2"],
            env={**os.environ, **own_deployment.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert skipped.returncode != 0 and "not parked" in skipped.stderr

        # A restarted projector holds a parked partition where it was, without trying it again.
        projector.stop()
        append(own_deployment, 3, 402, product_created(402, "Behind the NUL byte"))
        projector.start()
        append(own_deployment, 4, 501, product_created(501, "After the restart"))
        eventually(lambda: 501 in product_ids(own_deployment), 60, "the restarted projector applying")
        assert parked_at(3, nul_offset, 1), "the restarted projector tried the parked record again"
        assert 402 not in product_ids(own_deployment)
        projectors_command(own_deployment, "skip", "catalog", "3")
        eventually(lambda: 402 in product_ids(own_deployment), 30, "the record behind the skipped NUL byte")
    finally:
        projector.stop()


def test_a_restarted_projector_keeps_a_partition_parked_at_a_record_that_follows_a_transaction(
    own_deployment: Deployment,
) -> None:
    # Both in the log before the projector starts, so that they come in one batch: the record before
    # the NUL byte is applied, and the commit marker between them is not a record of the batch.
    before, nul_offset = append_in_transactions(
        own_deployment,
        0,
        [(601, product_created(601, "Before the NUL byte")), (602, product_created(602, "nul\x00name"))],
    )
    assert nul_offset == before + 2, "a commit marker between the two records"
    projector = own_deployment.projector("catalog").start()
    try:

        def parked_at_nul() -> list[dict[str, Any]]:
            projector.ensure_running()
            return [
                row
                for row in parked(own_deployment, "catalog")
                if (row["partition"], row["record_offset"]) == (0, nul_offset)
            ]

        eventually(parked_at_nul, 60, f"partition 0 parked at the NUL byte, offset {nul_offset}")
        assert 601 in product_ids(own_deployment)
        assert stored_offset(own_deployment, "catalog", 0) == nul_offset, "stored short of the parked record"

        projector.stop()
        projector.start()
        append(own_deployment, 1, 701, product_created(701, "After the restart"))
        eventually(lambda: 701 in product_ids(own_deployment), 60, "the restarted projector applying")
        [row] = parked_at_nul()
        assert row["attempts"] == 1, "the restarted projector tried the parked record again"
    finally:
        projector.stop()


def rebuild(deployment: Deployment, projection: str) -> subprocess.CompletedProcess[str]:
    """`python -m projectors rebuild` as an operator runs it (its progress goes to stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "projectors", "rebuild", projection],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("projection", ["catalog", "catalog-search"])
def test_a_rebuild_passes_over_the_records_an_operator_skipped_and_stops_at_one_still_parked(
    own_deployment: Deployment, projection: str
) -> None:
    projector = own_deployment.projector(projection).start()
    try:
        append(own_deployment, 0, 801, product_created(801, "Before the poison"))
        poison_offset = append(own_deployment, 0, 801, unknown_event(801))
        behind = append(own_deployment, 0, 802, product_created(802, "Behind the poison"))
        append(own_deployment, 1, 901, product_created(901, "In another partition"))

        def parked_at_poison() -> list[dict[str, Any]]:
            projector.ensure_running()
            return [
                row
                for row in parked(own_deployment, projection)
                if (row["partition"], row["record_offset"]) == (0, poison_offset)
            ]

        eventually(parked_at_poison, 60, f"{projection} to park partition 0 at {poison_offset}")
        stopped = rebuild(own_deployment, projection)
        assert stopped.returncode != 0, "a rebuild went past a record still parked"
        assert "ProductTeleported" in stopped.stderr, stopped.stderr
        # One line saying where it stopped and what to do, not a traceback.
        assert "Traceback" not in stopped.stderr, stopped.stderr
        assert f"partition 0 offset {poison_offset}" in stopped.stderr, stopped.stderr
        assert f"python -m projectors skip {projection} 0" in stopped.stderr, stopped.stderr
        if projection == "catalog-search":  # the failed rebuild's index is not left behind
            alias = product_index_alias(own_deployment.namespace)
            with httpx.Client(base_url=own_deployment.servers.elasticsearch_url) as es:
                indices = set(es.get(f"/_cat/indices/{alias}-*", params={"h": "index"}).text.split())
                assert indices == set(es.get(f"/_alias/{alias}").json()), indices

        projectors_command(own_deployment, "skip", projection, "0")
        eventually(
            lambda: stored_offset(own_deployment, projection, 0) > behind, 30, "the records behind the skip"
        )
        eventually(lambda: parked(own_deployment, projection) == [], 30, "the skip to be carried out")
        live = live_read_model(own_deployment, projection)
        assert sorted(int(key) for key in live) == [801, 802, 901]

        rebuilt = rebuild(own_deployment, projection)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert (
            f"records passed over as an operator skipped them: 1 (partition:offset 0:{poison_offset})"
            in rebuilt.stderr
        ), rebuilt.stderr
        assert live_read_model(own_deployment, projection) == live
        assert parked(own_deployment, projection) == []
    finally:
        projector.stop()


def test_a_projector_reset_after_a_skip_passes_over_the_skipped_record_instead_of_parking_it_again(
    own_deployment: Deployment,
) -> None:
    port = free_port()
    projector = own_deployment.projector("catalog", env={"COMMERCE_PROJECTOR_METRICS_PORT": str(port)})
    projector.start()
    try:
        append(own_deployment, 0, 1101, product_created(1101, "Before the poison"))
        poison_offset = append(own_deployment, 0, 1101, unknown_event(1101))
        behind = append(own_deployment, 0, 1102, product_created(1102, "Behind the poison"))

        def parked_at_poison() -> list[dict[str, Any]]:
            projector.ensure_running()
            return [row for row in parked(own_deployment, "catalog") if row["record_offset"] == poison_offset]

        eventually(parked_at_poison, 60, f"catalog to park partition 0 at {poison_offset}")
        projectors_command(own_deployment, "skip", "catalog", "0")
        eventually(lambda: 1102 in product_ids(own_deployment), 30, "the record behind the skipped poison")

        projector.stop()
        projectors_command(own_deployment, "reset", "catalog")
        projector.start()

        def replayed_or_parked() -> bool:
            projector.ensure_running()
            return stored_offset(own_deployment, "catalog", 0) > behind or bool(
                parked(own_deployment, "catalog")
            )

        eventually(replayed_or_parked, 60, "the reset projector past partition 0's records, or parked")
        assert parked(own_deployment, "catalog") == [], "a record the operator skipped was parked again"
        assert product_ids(own_deployment) == {1101, 1102}
        [row] = catalog_rows(
            own_deployment,
            "projection_dead_letters",
            "SELECT * FROM projection_dead_letters WHERE projection = 'catalog'",
        )
        assert (row["record_offset"], row["decision"], row["attempts"]) == (poison_offset, "skip", 1)
        assert metric(port, "projector_records_skipped_total", projection="catalog") == 1
        assert len(dead_letters(own_deployment)) == 1
    finally:
        projector.stop()
