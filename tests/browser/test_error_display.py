"""Failures shown to the user in the page's alert region (aria-live): a service the edge cannot reach
is "unavailable, retry shortly", and a 422's field errors sit beside their inputs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.deployment import Deployment
from tests.support.edge import EdgeProcess, address
from tests.support.processes import HttpService, free_port


@pytest.fixture(scope="module")
def edge_without_catalog(deployment: Deployment, users_service: HttpService) -> Iterator[EdgeProcess]:
    """An edge whose catalog upstream does not listen: nginx's own 502, answered as a JSON 503."""
    upstreams = {"users": [address(users_service.url)], "catalog": [f"127.0.0.1:{free_port()}"]}
    edge = EdgeProcess("edge-without-catalog", upstreams, deployment.work_dir).start()
    yield edge
    edge.stop()


def test_a_service_the_edge_cannot_reach_is_shown_as_unavailable(
    tab: Page, edge_without_catalog: EdgeProcess
) -> None:
    tab.goto(f"{edge_without_catalog.url}/")
    expect(tab.get_by_role("alert")).to_have_text("The service is unavailable, retry shortly.")
    expect(tab.get_by_text("The products could not be loaded.")).to_be_visible()


def test_an_invalid_filter_is_shown_beside_its_input(tab: Page, edge: EdgeProcess) -> None:
    tab.goto(f"{edge.url}/")
    search = tab.get_by_role("search", name="Products")
    search.get_by_label("Lowest price").fill("cheap")
    search.get_by_role("button", name="Show products").click()
    expect(tab.get_by_role("alert")).to_contain_text("Invalid request: min_price")
    lowest = search.get_by_label("Lowest price")
    expect(lowest).to_have_attribute("aria-invalid", "true")
    expect(lowest).to_be_focused()
    expect(search.locator(".field-error:not([hidden])")).to_have_count(1)
