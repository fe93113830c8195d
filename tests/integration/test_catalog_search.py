"""Product search in a real Elasticsearch, on a small fixed catalog of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import provision_deployment
from tests.support.catalog_client import created, list_products
from tests.support.processes import HttpService
from tests.support.servers import Servers
from tests.support.users_client import bearer

pytestmark = pytest.mark.integration

CATALOG = [
    ("Wireless Mouse", "Ergonomic mouse with a silent click and a USB receiver", "24.99", 5),
    ("Mechanical Keyboard", "Tactile switches and a detachable cable", "89.50", 3),
    ("Mouse Pad", "Large cloth pad for any mouse", "9.99", 0),
    ("Wireless Headphones", "Noise cancelling, thirty hours of battery", "149.00", 2),
    ("USB-C Charger", "Sixty five watt charger for laptops and phones", "39.90", 8),
]


@pytest.fixture(scope="module")
def search_deployment(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    deployment = provision_deployment(servers, tmp_path_factory)
    projector = deployment.projector("catalog", "catalog-search").start()
    service = deployment.gateway("catalog", name="catalog-for-search").start()
    token = deployment.admin_token()
    ids = {}
    consistency = ""
    for name, description, price, stock in CATALOG:
        product, consistency = created(
            service.url, token, name=name, description=description, price=price, stock=stock
        )
        ids[name] = product["id"]
    try:
        yield {
            "service": service,
            "ids": ids,
            "consistency": consistency,
            "token": token,
            "deployment": deployment,
        }
    finally:
        service.stop()
        projector.stop()


def search(setup: dict[str, Any], text: str, **params: Any) -> httpx.Response:
    return list_products(setup["service"].url, setup["consistency"], search=text, **params)


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [product["name"] for product in response.json()]


def test_the_best_match_comes_first(search_deployment: dict[str, Any]) -> None:
    assert names(search(search_deployment, "wireless mouse"))[0] == "Wireless Mouse"


def test_a_typo_still_finds_the_product(search_deployment: dict[str, Any]) -> None:
    assert names(search(search_deployment, "wirless mose"))[0] == "Wireless Mouse"
    assert names(search(search_deployment, "keybaord")) == ["Mechanical Keyboard"]


def test_search_looks_at_the_description_too(search_deployment: dict[str, Any]) -> None:
    assert names(search(search_deployment, "noise cancelling")) == ["Wireless Headphones"]


def test_search_pages_with_a_total(search_deployment: dict[str, Any]) -> None:
    everything = search(search_deployment, "mouse")
    assert everything.headers["X-Total-Count"] == "2"
    second = search(search_deployment, "mouse", limit=1, offset=1)
    assert second.headers["X-Total-Count"] == "2"
    assert names(second) == names(everything)[1:]


def test_search_filters_and_sorts(search_deployment: dict[str, Any]) -> None:
    assert names(search(search_deployment, "wireless", max_price="50")) == ["Wireless Mouse"]
    assert names(search(search_deployment, "mouse", in_stock=True)) == ["Wireless Mouse"]
    assert names(search(search_deployment, "mouse", sort="price_asc")) == ["Mouse Pad", "Wireless Mouse"]
    priced = search(search_deployment, "wireless", sort="price_desc").json()
    assert [p["price"] for p in priced] == ["149.00", "24.99"]


def test_a_new_product_is_searchable_with_its_consistency_token(search_deployment: dict[str, Any]) -> None:
    service: HttpService = search_deployment["service"]
    _, consistency = created(service.url, search_deployment["token"], name="Trackball Deluxe")
    found = list_products(service.url, consistency, search="trackball")
    assert names(found) == ["Trackball Deluxe"]


def test_a_deleted_product_is_no_longer_found(search_deployment: dict[str, Any]) -> None:
    service: HttpService = search_deployment["service"]
    product, _ = created(service.url, search_deployment["token"], name="Vanishing Stylus")
    deleted = httpx.delete(
        f"{service.url}/products/{product['id']}", headers=bearer(search_deployment["token"])
    )
    assert names(list_products(service.url, deleted.headers["X-Consistency-Token"], search="stylus")) == []


def test_an_empty_search_is_a_422(search_deployment: dict[str, Any]) -> None:
    assert list_products(search_deployment["service"].url, None, search="").status_code == 422
