"""One process serving several services, as `./run up` runs each instance: every service on its own
port with its own event store (its partitions' owner is reached at its own port), the metrics of all of
them on each port, labelled by service, and one SIGTERM stops them all cleanly."""

from __future__ import annotations

import random
import re
import socket

import httpx
import pytest

from gateway.apps import PORTS
from tests.support.catalog_client import create_product
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.users_client import bearer, new_email, register

pytestmark = pytest.mark.integration


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_offset(services: list[str]) -> int:
    """An offset that puts every service's seed port on a free one."""
    for _ in range(200):
        offset = random.randrange(20_000, 50_000, 10)
        if all(_free(PORTS[service] + offset) for service in services):
            return offset
    raise AssertionError("no free ports for the instance")


def requests_counted(metrics: str) -> set[tuple[str, str]]:
    """(service, route) of every POST the HTTP request counter counted."""
    counted = set()
    for line in metrics.splitlines():
        if line.startswith("http_requests_total{") and 'method="POST"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            counted.add((labels["service"], labels["route"]))
    return counted


def test_one_process_serves_each_service_on_its_port_and_stops_them_all_at_once(
    own_deployment: Deployment,
) -> None:
    offset = free_offset(["users", "catalog"])
    users_port, catalog_port = PORTS["users"] + offset, PORTS["catalog"] + offset
    instance = HttpService(
        "users+catalog",
        ["-m", "gateway", "users", "catalog", "--port-offset", str(offset)],
        own_deployment.env,
        own_deployment.work_dir,
        users_port,
    ).start()
    catalog = f"http://127.0.0.1:{catalog_port}"
    try:
        assert httpx.get(f"{catalog}/health", timeout=5).status_code == 200
        assert register(instance.url, email=new_email()).status_code == 201
        admin = own_deployment.admin_token()
        assert create_product(catalog, admin).status_code == 201
        assert httpx.post(f"{instance.url}/products", json={}, timeout=5).status_code == 404

        # Each service's event store advertises its own port as its partitions' owner.
        stores = httpx.get(f"{catalog}/internal/partitions", headers=bearer(admin), timeout=5).json()
        assert set(stores["catalog"]["routes"].values()) == {catalog}
        stores = httpx.get(f"{instance.url}/internal/partitions", headers=bearer(admin), timeout=5).json()
        assert set(stores["users"]["routes"].values()) == {instance.url}

        counted = requests_counted(httpx.get(f"{instance.url}/metrics", timeout=5).text)
        assert ("catalog", "/products") in counted
        assert ("users", "/auth/register") in counted
    finally:
        instance.stop()
    instance.ensure_stopped_cleanly()
