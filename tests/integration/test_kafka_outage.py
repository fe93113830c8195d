"""The broker crashes (SIGKILL) under a steady stream of commands and comes back 10 s later: every
request is answered within the command timeout, only with 201 or 503; the writers are back within
seconds of the broker; no task dies unobserved; and every 201 has exactly one event in the log.

The broker is the test's own (a private one-broker cluster, tests/support/kafka_cluster.py), so the
shared one is not disturbed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_schemas import topics
from tests.support.command_load import created_products, steady_load
from tests.support.deployment import Deployment
from tests.support.kafka_cluster import KafkaCluster, deployment_on, kafka_cluster
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

COMMANDS_PER_SECOND = 50
BEFORE_CRASH, OUTAGE, AFTER_RETURN = 5.0, 10.0, 15.0
# The answer may take the command timeout plus the HTTP round trip on a busy 2-core machine.
ANSWER_MARGIN = 2.5
# Once the broker answers again, the writers re-fence and catch up: commands succeed within this.
RECOVERED_WITHIN = 5.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaCluster]:
    with kafka_cluster(tmp_path / "kafka", brokers=1) as running:
        yield running


@pytest.fixture
def broker_deployment(
    servers: Servers, broker: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    return deployment_on(broker, servers, tmp_path_factory.mktemp("deployment"))


def test_commands_through_a_broker_crash_get_answers_in_time_and_none_is_lost(
    broker_deployment: Deployment, broker: KafkaCluster
) -> None:
    timeout = broker_deployment.settings.command_timeout_seconds
    catalog = broker_deployment.gateway("catalog", side="command", name="catalog-outage").start()
    token = broker_deployment.admin_token()
    outage: dict[str, float] = {}
    crash_failed: list[Exception] = []

    def crash_and_restart() -> None:
        try:
            time.sleep(BEFORE_CRASH)
            outage["crashed"] = time.monotonic()
            broker.kill(1)
            time.sleep(OUTAGE)
            broker.restart(1)
            outage["returned"] = time.monotonic()
        except Exception as error:  # raised again once the load has stopped
            crash_failed.append(error)

    try:
        catalog.wait_healthy()
        crash = threading.Thread(target=crash_and_restart)
        crash.start()
        try:
            answers = asyncio.run(
                steady_load(
                    catalog.url,
                    token,
                    COMMANDS_PER_SECOND,
                    done=lambda: (
                        not crash.is_alive() and time.monotonic() >= outage.get("returned", 0) + AFTER_RETURN
                    ),
                )
            )
        finally:
            crash.join()
    finally:
        catalog.stop()
    if crash_failed:
        raise crash_failed[0]

    crashed, returned = outage["crashed"], outage["returned"]
    by_status = Counter(answer.status for answer in answers)
    slowest = max(answer.took for answer in answers)
    first_503 = min((a.answered for a in answers if a.status == 503), default=float("nan"))
    last_refused = max((a.sent for a in answers if a.status != 201), default=crashed)
    print(
        f"\n{len(answers)} commands at {COMMANDS_PER_SECOND}/s: {dict(by_status)}; slowest answer "
        f"{slowest:.2f}s; first 503 {first_503 - crashed:.2f}s after the crash; broker back "
        f"{returned - crashed:.1f}s after it; every command sent from {last_refused - returned:+.2f}s "
        "after its return on acknowledged"
    )
    assert set(by_status) <= {201, 503}, f"only 201 and 503: {dict(by_status)}"
    assert slowest <= timeout + ANSWER_MARGIN, f"an answer took {slowest:.1f}s (command timeout {timeout}s)"
    assert last_refused - returned <= RECOVERED_WITHIN, "commands succeed again within seconds of the broker"

    topic = topics.in_namespace(broker_deployment.namespace, topics.CATALOG)
    created = created_products(broker.bootstrap, topic)
    for answer in answers:
        if answer.status == 201:
            times = created[f"product-{answer.product_id}"]
            assert times == 1, f"product {answer.product_id} was acknowledged and is in the log {times} times"

    log = catalog.log_path.read_text(errors="replace")
    for unexpected in ("Task exception was never retrieved", "never retrieved", "Traceback"):
        assert unexpected not in log, (
            "the service logged:\n" + log[max(0, log.index(unexpected) - 300) :][:3000]
        )
