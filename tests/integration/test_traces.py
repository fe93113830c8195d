"""One user action is one trace across processes: `POST /orders` on the orders service, the append of
its events, the projectors that apply them, and the order saga's steps with the catalog commands they
send, each in its own process, all exporting to one traces file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.span_file import read_spans
from tests.support.catalog_client import created
from tests.support.deployment import Deployment
from tests.support.orders_client import (
    add_to_cart,
    new_customer_id,
    order_settled,
    place_order,
    replica_knows,
)
from tests.support.processes import HttpService, ServiceProcess
from tests.support.waiting import eventually


@pytest.fixture
def traced(own_deployment: Deployment) -> Iterator[tuple[Deployment, HttpService, HttpService, Path]]:
    """The catalog's command side, the orders service, its projectors and the saga, tracing to a file."""
    deployment = own_deployment
    traces = deployment.work_dir / "traces.jsonl"
    env = {
        "COMMERCE_TRACES_FILE": str(traces),
        "COMMERCE_TRACES_SAMPLE_RATIO": "1",  # every action: the test follows one
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    catalog = deployment.gateway("catalog", side="command", env=env)
    orders = deployment.gateway("orders", env=env)
    projectors = deployment.projector("orders-products", "orders-carts", "orders", env=env)
    saga = ServiceProcess(
        "order-saga",
        ["-m", "command_api.orders.saga_runner"],
        deployment.env | env | {"COMMERCE_CATALOG_URL": catalog.url, "COMMERCE_ORDERS_URL": orders.url},
        deployment.work_dir,
    )
    processes: list[ServiceProcess] = [catalog, orders, projectors, saga]
    for process in processes:  # side by side: each takes seconds to start
        ServiceProcess.start(process)
    try:
        catalog.wait_healthy()
        orders.wait_healthy()
        yield deployment, catalog, orders, traces
    finally:
        for process in processes:
            process.stop()


def test_placing_an_order_is_one_trace_from_the_request_through_kafka_to_projectors_and_saga(
    traced: tuple[Deployment, HttpService, HttpService, Path],
) -> None:
    deployment, catalog, orders, traces = traced
    customer = deployment.customer_token(new_customer_id())
    product, _ = created(catalog.url, deployment.admin_token(), stock=5, price="9.99")
    replica_knows(deployment, product["id"])
    added = add_to_cart(orders.url, customer, product["id"], 2)
    assert added.status_code == 200, added.text
    correlation_id = str(uuid.uuid4())

    placed = place_order(orders.url, customer, **{"X-Correlation-Id": correlation_id})

    assert placed.status_code == 200, placed.text
    order_number = int(placed.json()["orderNumber"])
    assert order_settled(orders.url, customer, order_number)["status"] == "confirmed"
    expected = {
        ("orders", "POST /orders"),
        ("orders", "append Cart+Order"),
        ("projector-orders-products+orders-carts+orders", "apply orders"),
        ("projector-orders-products+orders-carts+orders", "apply orders-carts"),
        ("order-saga", "saga reserve stock"),
        ("order-saga", "POST /internal/reservations"),
        ("catalog-command", "POST /internal/reservations"),
        ("catalog-command", "append Product"),
        ("order-saga", f"POST /internal/orders/{order_number}/reservations"),
        ("orders", "POST /internal/orders/{order_number}/reservations"),
        ("orders", "append Order"),
    }

    def the_whole_trace() -> list[dict[str, Any]] | None:
        spans = list(read_spans(traces)) if traces.exists() else []
        request = [
            span
            for span in spans
            if span["name"] == "POST /orders"
            and span["attributes"].get("commerce.correlation_id") == correlation_id
        ]
        if not request:
            return None
        trace = [span for span in spans if span["trace_id"] == request[0]["trace_id"]]
        return trace if expected <= {(span["service"], span["name"]) for span in trace} else None

    trace = eventually(the_whole_trace, within=15, what=f"the spans {sorted(expected)} in one trace")

    by_id = {span["span_id"]: span for span in trace}
    [request] = [span for span in trace if span["name"] == "POST /orders"]
    assert request["kind"] == "SERVER"
    assert request["attributes"]["http.response.status_code"] == 200
    [append] = [span for span in trace if span["name"] == "append Cart+Order"]
    assert append["parent_span_id"] == request["span_id"]
    # What the order's events set off in other processes hangs under their append.
    after_append = {span["name"]: span for span in trace if span["parent_span_id"] == append["span_id"]}
    assert {"apply orders", "apply orders-carts", "saga reserve stock"} <= set(after_append)
    step = after_append["saga reserve stock"]
    # The correlation id goes on through the saga into the commands it sends and their events.
    for applied in (span for span in trace if span["name"].startswith("apply ")):
        assert applied["attributes"]["commerce.correlation_id"] == correlation_id
    assert step["attributes"]["commerce.correlation_id"] == correlation_id
    # The saga's call to the catalog is a child of its step, and the catalog's append a grandchild.
    [reserve] = [span for span in trace if span["name"] == "append Product"]
    server = by_id[reserve["parent_span_id"]]
    assert server["service"] == "catalog-command"
    assert by_id[server["parent_span_id"]]["parent_span_id"] == step["span_id"]
    assert server["attributes"]["commerce.correlation_id"] == correlation_id
    # The saga's log line for the step carries the step's trace and correlation ids.
    saga_log = [
        json.loads(line) for line in (deployment.work_dir / "order-saga.log").read_text().splitlines()
    ]
    assert any(
        line.get("trace_id") == request["trace_id"] and line.get("correlation_id") == correlation_id
        for line in saga_log
    ), saga_log[-5:]
