"""The edge's configuration: every public route of every service is routed to it, and the Docker file is
what infra/edge.py renders."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Literal

import pytest
from fastapi.routing import APIRoute

from config.settings import Settings
from gateway.apps import PORTS, service_app
from infra.edge import (
    DOCKER_CONFIG,
    DOCKER_EDGE,
    SEED_PORTS,
    SERVICE_PATHS,
    STOREFRONT,
    Edge,
    nginx_config,
    rotate_when_full,
    write_config,
)
from tests.support.servers import unavailable

# Served by every instance for operators and peers, never at the edge.
NOT_AT_THE_EDGE = ("/internal/", "/health", "/metrics", "/docs", "/redoc", "/openapi.json")


@pytest.mark.parametrize("service", sorted(PORTS))
def test_every_public_route_of_a_service_is_routed_to_that_service(service: str) -> None:
    app = service_app(service, Settings())
    public = [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and not route.path.startswith(NOT_AT_THE_EDGE)
    ]
    assert public
    for path in public:
        owners = [name for name, prefixes in SERVICE_PATHS.items() if path.startswith(prefixes)]
        assert owners == [service], f"{path} is routed to {owners}"


def test_the_seed_ports_are_the_services_ports() -> None:
    assert PORTS == SEED_PORTS


def test_the_docker_compose_edge_configuration_is_current() -> None:
    assert DOCKER_CONFIG.read_text() == nginx_config(DOCKER_EDGE), (
        "stale: run `python -m infra.edge docker-config`"
    )


def test_a_production_edge_refuses_the_simulated_gateway_and_routes_every_other_payments_path(
    tmp_path: Path,
) -> None:
    upstreams = {"payments": ["127.0.0.1:6002"]}
    local = nginx_config(Edge(8080, upstreams, tmp_path))
    production = nginx_config(Edge(8080, upstreams, tmp_path, environment="production"))
    assert "location /simulated-gateway/ { proxy_pass http://payments; }" in local
    assert "location /simulated-gateway/ { return 404; }" in production
    assert "/simulated-gateway/ { proxy_pass" not in production
    for prefix in SERVICE_PATHS["payments"]:
        if not prefix.startswith("/simulated-gateway/"):
            assert f"location {prefix} {{ proxy_pass http://payments; }}" in production, prefix


def test_a_production_edge_routes_every_public_route_of_a_production_payments_service(tmp_path: Path) -> None:
    """What a production payments service serves (with Stripe) is reachable at a production edge."""
    production = Settings.model_validate({"environment": "production", "stripe_secret_key": "sk_test_123"})
    config = nginx_config(Edge(8080, {"payments": ["127.0.0.1:6002"]}, tmp_path, environment="production"))
    proxied = re.findall(r"location (\S+) \{ proxy_pass http://payments; \}", config)
    for route in service_app("payments", production).routes:
        if isinstance(route, APIRoute) and not route.path.startswith(NOT_AT_THE_EDGE):
            assert route.path.startswith(tuple(proxied)), route.path


@pytest.mark.parametrize("environment", ["local", "production"])
def test_nginx_accepts_the_rendered_configuration(
    tmp_path: Path, environment: Literal["local", "production"]
) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        unavailable("nginx is not installed (infra/stack.sh tools nginx)")
        return
    edge = Edge(
        8080,
        {
            "users": ["127.0.0.1:6000", "127.0.0.1:6010"],
            "catalog": ["127.0.0.1:8000"],
            "payments": ["127.0.0.1:6002"],
        },
        tmp_path,
        environment=environment,
    )
    config = write_config(edge)
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


def test_the_storefronts_service_prefixes_are_the_edges() -> None:
    """storefront/js/api.js keeps its own copy of the routing (to know which service's consistency token
    a read needs); every prefix it names must be one the edge sends to the same service."""
    api = (STOREFRONT / "js" / "api.js").read_text()
    table = re.search(r"const SERVICE_PREFIXES = \{(.*?)\};", api, re.DOTALL)
    assert table is not None
    for service, prefixes in re.findall(r"(\w+): \[([^\]]*)\]", table.group(1)):
        named = set(re.findall(r'"([^"]+)"', prefixes))
        assert named and named <= set(SERVICE_PATHS[service]), service


def test_a_full_access_log_is_renamed_and_its_writer_reopens_it(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    reopened: list[bool] = []
    assert not rotate_when_full(log, 100, lambda: reopened.append(True))  # none yet
    log.write_bytes(b"x" * 99)
    assert not rotate_when_full(log, 100, lambda: reopened.append(True))
    log.write_bytes(b"x" * 100)
    assert rotate_when_full(log, 100, lambda: reopened.append(True))
    assert reopened == [True]
    assert not log.exists() and (tmp_path / "access.log.1").read_bytes() == b"x" * 100
