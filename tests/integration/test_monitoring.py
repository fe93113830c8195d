"""A real Prometheus, started as `./run up` starts it (`python -m infra.monitoring serve`), scrapes a
service and a projector of a deployment of its own, and its recording rules answer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.deployment import Deployment
from tests.support.processes import HttpService, ServiceProcess, free_port
from tests.support.servers import unavailable
from tests.support.users_client import new_email, register
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class Prometheus(ServiceProcess):
    def __init__(self, work_dir: Path, targets: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        arguments = ["-m", "infra.monitoring", "serve", "--port", str(self.port)]
        arguments += ["--work-dir", str(work_dir / "prometheus"), "--scrape-interval", "1"]
        for job, address in targets.items():
            arguments += ["--target", f"{job}={address}"]
        super().__init__("prometheus", arguments, {}, work_dir)

    def wait_ready(self, within: float = 30) -> None:
        def ready() -> bool:
            self.ensure_running()
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, within, f"Prometheus ready on {self.url}:\n{self.log_tail()}", every=0.2)

    def query(self, expression: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=5).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def watched(own_deployment: Deployment) -> Iterator[tuple[Prometheus, HttpService]]:
    if shutil.which("prometheus") is None:
        unavailable("prometheus (infra/stack.sh tools prometheus)")
    metrics_port = free_port()
    projector = own_deployment.projector(
        "users", env={"COMMERCE_PROJECTOR_METRICS_PORT": str(metrics_port)}
    ).start()
    service = own_deployment.gateway("users", name="users-watched").start()
    prometheus = Prometheus(
        own_deployment.work_dir,
        {"users": f"127.0.0.1:{service.port}", "users-projector": f"127.0.0.1:{metrics_port}"},
    )
    prometheus.start()
    try:
        prometheus.wait_ready()
        yield prometheus, service
    finally:
        prometheus.stop()
        service.stop()
        projector.stop()


def test_prometheus_scrapes_the_service_and_the_projector_and_records_the_dashboard_series(
    watched: tuple[Prometheus, HttpService],
) -> None:
    prometheus, service = watched

    def every_target_up() -> list[str] | None:
        targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        jobs = {target["labels"]["job"]: target["health"] for target in targets}
        return sorted(jobs) if set(jobs.values()) == {"up"} and len(jobs) == 3 else None

    assert eventually(every_target_up, 30, "every target up") == ["prometheus", "users", "users-projector"]

    # Traffic while Prometheus watches: a rate needs the counter to move between two scrapes.
    def requests_recorded() -> float | None:
        httpx.get(f"{service.url}/health", timeout=5)
        return prometheus.value('service:http_requests:rate1m{service="users"} > 0')

    eventually(requests_recorded, 60, "the users service's request rate, recorded by the rule")

    def registrations_applied() -> float | None:
        register(service.url, email=new_email())
        return prometheus.value(
            'projector_events_applied_total{job="users-projector", projection="users",'
            ' event_type="UserRegistered"} > 0'
        )

    eventually(registrations_applied, 60, "the projector's count of applied registrations")

    # The command side's transactions are timed and sized (the users service appended them). Traffic
    # goes on meanwhile: a series first scraped after the registrations above would show no increase.
    def transactions_recorded() -> float | None:
        register(service.url, email=new_email())
        return prometheus.value('topic:event_store_transactions:rate1m{topic=~".*users.*"} > 0')

    eventually(transactions_recorded, 60, "the users event store's transactions, recorded by the rule")
    # Caught up, the projector's lag is nothing, on every partition it holds.
    eventually(
        lambda: prometheus.value('projection:projector_lag_records:max{projection="users"} == 0') is not None,
        60,
        "the users projection's lag back at 0",
    )
