"""A projector asked to stop (SIGTERM, as `./run down` and process managers do) leaves its consumer
group at once, so its successor gets the partitions without waiting for a session to time out."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.catalog_client import create_product
from tests.support.catalog_read_models import product_rows
from tests.support.deployment import Deployment
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# A consumer that vanishes without leaving holds its partitions for its session (10 s); a successor
# that starts and joins on this machine takes 2-4 s.
HANDED_OVER_WITHIN = 7.0


def projected(deployment: Deployment, product_id: int) -> bool:
    try:
        return any(row["id"] == product_id for row in product_rows(deployment))
    except psycopg.errors.UndefinedTable:  # the projector has not created its table yet
        return False


def test_a_projector_stopped_by_sigterm_hands_its_partitions_over_at_once(own_deployment: Deployment) -> None:
    service = own_deployment.gateway("catalog", side="command", name="catalog-commands").start()
    first = own_deployment.projector("catalog").start()
    token = own_deployment.admin_token()
    second = None
    try:
        before = create_product(service.url, token).json()["id"]
        eventually(lambda: projected(own_deployment, before), 60, "a first product")
        first.stop(timeout=10)
        first.ensure_stopped_cleanly()

        second = own_deployment.projector("catalog").start()
        handed_over = time.monotonic()
        after = create_product(service.url, token).json()["id"]
        eventually(lambda: projected(own_deployment, after), 60, "the successor to project a product")
        took = time.monotonic() - handed_over
        assert took < HANDED_OVER_WITHIN, f"the successor projected its first product after {took:.1f}s"
    finally:
        service.stop()
        first.stop()
        if second is not None:
            second.stop()
