"""Session fixtures: real servers, one deployment (namespace, databases, keys) and its users service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deployment import PROVISIONED, Deployment, retire_namespaces
from tests.support.processes import HttpService, ServiceProcess
from tests.support.servers import Servers, real_servers
from tests.support.users_client import make_admin, new_email, register, token_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop a shared server run last, so they cannot disturb the others."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with real_servers() as running:
        yield running
        retire_namespaces(running.kafka_bootstrap, PROVISIONED)


def provision_deployment(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    work_dir: Path = tmp_path_factory.mktemp("deployment")
    deployment = Deployment(servers, work_dir)
    deployment.provision()
    return deployment


@pytest.fixture(scope="session")
def deployment(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return provision_deployment(servers, tmp_path_factory)


@pytest.fixture
def own_deployment(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A deployment of its own (namespace, topics, databases), for tests that restart its processes."""
    deployment = provision_deployment(servers, tmp_path_factory)
    yield deployment
    retire_namespaces(servers.kafka_bootstrap, [deployment.namespace])
    PROVISIONED.remove(deployment.namespace)


@pytest.fixture(scope="session")
def users_projector(deployment: Deployment) -> Iterator[ServiceProcess]:
    projector = deployment.projector("users").start()
    yield projector
    projector.stop()


@pytest.fixture(scope="session")
def users_service(deployment: Deployment, users_projector: ServiceProcess) -> Iterator[HttpService]:
    service = deployment.gateway("users", name="users-gateway").start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def admin_token(users_service: HttpService, deployment: Deployment) -> str:
    register(users_service.url, email=deployment.admin_email)
    make_admin(users_service.url, deployment.admin_email, deployment.service_token())
    return token_for(users_service.url, deployment.admin_email)


@pytest.fixture(scope="session")
def customer_token(users_service: HttpService) -> str:
    email = new_email()
    register(users_service.url, email=email)
    return token_for(users_service.url, email)


@pytest.fixture(scope="session")
def catalog_projector(deployment: Deployment) -> Iterator[ServiceProcess]:
    projector = deployment.projector("catalog", "catalog-search").start()
    yield projector
    projector.stop()


@pytest.fixture(scope="session")
def catalog_service(deployment: Deployment, catalog_projector: ServiceProcess) -> Iterator[HttpService]:
    service = deployment.gateway("catalog", name="catalog-gateway").start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def orders_projectors(deployment: Deployment) -> Iterator[ServiceProcess]:
    projector = deployment.projector("orders-products", "orders-carts", "orders").start()
    yield projector
    projector.stop()


@pytest.fixture(scope="session")
def orders_service(deployment: Deployment, orders_projectors: ServiceProcess) -> Iterator[HttpService]:
    service = deployment.gateway("orders", name="orders-gateway").start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def order_saga(
    deployment: Deployment,
    catalog_service: HttpService,
    orders_service: HttpService,
    payments_service: HttpService,
) -> Iterator[ServiceProcess]:
    """The saga, driving this deployment's own services (a late payment is refunded by payments)."""
    saga = deployment.order_saga(catalog_service.url, orders_service.url, payments_service.url).start()
    yield saga
    saga.stop()


@pytest.fixture(scope="session")
def payments_projector(deployment: Deployment) -> Iterator[ServiceProcess]:
    projector = deployment.projector("payments-orders", "payments").start()
    yield projector
    projector.stop()


@pytest.fixture(scope="session")
def payments_service(deployment: Deployment, payments_projector: ServiceProcess) -> Iterator[HttpService]:
    """Payments with the simulated gateway (the deployment sets no Stripe key)."""
    service = deployment.gateway("payments", name="payments-gateway").start()
    yield service
    service.stop()
