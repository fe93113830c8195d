"""Faults with accounting: commands go on while a projector is killed again and again; afterwards
every acknowledged command has exactly one event in the log, and every read model equals a clean
rebuild from the log (compared by checksum).

The other faults of the suite, each with the same accounting, live beside the code they exercise:
the broker crashed and restarted (test_kafka_outage.py), the partition leader of a three-broker
cluster killed (test_kafka_cluster_failover.py), PostgreSQL and Elasticsearch stopped
(test_catalog_projections.py), the order saga killed mid-step (test_order_saga.py)."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from event_schemas import topics
from event_schemas.catalog import ProductCreated
from tests.support.catalog_read_models import (
    SteadyWrites,
    caught_up,
    checksum,
    clean_read_model,
    differences,
    live_read_model,
)
from tests.support.deployment import Deployment
from tests.support.kafka_log import committed_events

pytestmark = pytest.mark.integration

KILLS = 20


def test_a_projector_killed_twenty_times_under_writes_leaves_read_models_equal_to_a_clean_rebuild(
    own_deployment: Deployment,
) -> None:
    service = own_deployment.gateway("catalog", side="command", name="catalog-commands").start()
    projector = own_deployment.projector("catalog", "catalog-search").start()
    token = own_deployment.admin_token()
    chance = random.Random(10)
    try:
        with SteadyWrites(service.url, token) as writes:
            writes.wait_for(50)
            for _ in range(KILLS):
                time.sleep(chance.uniform(0.3, 1.5))  # mid-batch, mid-startup or idle: wherever it lands
                projector.kill()
                projector.start()
            writes.wait_for(writes.sent.total() + 50)
        caught_up(own_deployment, "catalog", "catalog-search")

        log = committed_events(
            own_deployment.servers.kafka_bootstrap,
            topics.in_namespace(own_deployment.namespace, topics.CATALOG),
        )
        created = Counter(event.aggregate_id for event, _ in log if isinstance(event, ProductCreated))
        assert writes.created and all(created[f"product-{pid}"] == 1 for pid in writes.created)
        for projection in ("catalog", "catalog-search"):
            live, clean = (
                live_read_model(own_deployment, projection),
                clean_read_model(own_deployment, projection),
            )
            assert len(live) == len(writes.created)
            assert checksum(live) == checksum(clean), f"{projection}:\n{differences(live, clean)}"
    finally:
        service.stop()
        projector.stop()
