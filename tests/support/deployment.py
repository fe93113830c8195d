"""A deployment of the platform for one test session: its own namespace (topics, groups), databases
and keys on the shared real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from auth.tokens import ensure_local_keys, load_issuer, load_service_issuer, service_token
from bench.throwaway import delete_namespace_topics
from command_api.checkpoint_key import load_checkpoint_key
from config.settings import Settings
from infra.topics import ensure_topics
from tests.support.processes import HttpService, ServiceProcess, free_port
from tests.support.servers import Servers

# Where a deployment lives: its topics, databases, index and keys.
PLACE = (
    "namespace",
    "kafka_bootstrap_servers",
    "kafka_replication_factor",
    "kafka_min_insync_replicas",
    "users_database_url",
    "catalog_database_url",
    "orders_database_url",
    "payments_database_url",
    "elasticsearch_url",
    "jwt_private_key_file",
    "jwt_public_key_file",
    "service_private_key_file",
    "service_public_key_file",
    "checkpoint_key_file",
    "state_dir",
)
# The limits on callers, which a load from one address reaches at once.
CALLER_LIMITS = ("login_failures_per_account", "login_attempts_per_address", "registrations_per_address")
_OVERRIDDEN = (
    *PLACE,
    *CALLER_LIMITS,
    "order_payment_window_seconds",
    "order_expiry_sweep_seconds",
    "command_timeout_seconds",
    "projector_max_batch",
    "password_hashing_wait_seconds",
    "max_open_orders_per_customer",
    "max_held_units_per_customer",
)
# Tests register and log in far more often, all from one address, than the limits on callers allow, and
# hash many passwords at once on a small machine, and some customers order more than one may hold at
# once: those limits are lifted here, and the tests of them set their own through `gateway(..., env=...)`.
_UNLIMITED = 1_000_000


# Every namespace provisioned in this test session, so that its topics can be deleted at the end.
PROVISIONED: list[str] = []


def retire_namespaces(bootstrap_servers: str, namespaces: list[str]) -> None:
    """Delete the namespaces' topics: a shared broker keeps every partition in memory, and a session
    creates thousands."""
    asyncio.run(delete_namespace_topics(bootstrap_servers, namespaces))


@dataclass
class Deployment:
    servers: Servers
    work_dir: Path
    namespace: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    admin_email: str = "admin@example.com"
    projector_max_batch: int = 5000
    order_payment_window_seconds: float = 1800.0
    # 3 and 2 on a test's own three-broker cluster (tests/support/kafka_cluster.py).
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1

    def database_url(self, service: str) -> str:
        return self.servers.postgres_admin_url.rsplit("/", 1)[0] + f"/{self.namespace}_{service}"

    @property
    def settings(self) -> Settings:
        return Settings(
            namespace=self.namespace,
            kafka_bootstrap_servers=self.servers.kafka_bootstrap,
            kafka_replication_factor=self.kafka_replication_factor,
            kafka_min_insync_replicas=self.kafka_min_insync_replicas,
            users_database_url=self.database_url("users"),
            catalog_database_url=self.database_url("catalog"),
            orders_database_url=self.database_url("orders"),
            payments_database_url=self.database_url("payments"),
            order_payment_window_seconds=self.order_payment_window_seconds,
            order_expiry_sweep_seconds=0.5,
            elasticsearch_url=self.servers.elasticsearch_url,
            jwt_private_key_file=self.work_dir / "keys" / "jwt.pem",
            jwt_public_key_file=self.work_dir / "keys" / "jwt.pub.pem",
            service_private_key_file=self.work_dir / "keys" / "service.pem",
            service_public_key_file=self.work_dir / "keys" / "service.pub.pem",
            checkpoint_key_file=self.work_dir / "keys" / "checkpoint.key",
            state_dir=self.work_dir / "state",
            command_timeout_seconds=3,
            projector_max_batch=self.projector_max_batch,
            login_failures_per_account=_UNLIMITED,
            login_attempts_per_address=_UNLIMITED,
            registrations_per_address=_UNLIMITED,
            password_hashing_wait_seconds=60,
            max_open_orders_per_customer=_UNLIMITED,
            max_held_units_per_customer=_UNLIMITED,
        )

    @property
    def env(self) -> dict[str, str]:
        """The same settings as environment variables, for the service processes."""
        values = self.settings.model_dump(mode="json", include=set(_OVERRIDDEN))
        return {
            f"COMMERCE_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in values.items()
        }

    def provision(self) -> None:
        PROVISIONED.append(self.namespace)
        asyncio.run(ensure_topics(self.settings))
        ensure_local_keys(self.settings)  # both pairs, before any process could race to create them
        load_checkpoint_key(self.settings)
        with psycopg.connect(self.servers.postgres_admin_url, autocommit=True) as admin:
            for service in ("users", "catalog", "orders", "payments"):
                name = f"{self.namespace}_{service}"
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def gateway(
        self, service: str, side: str = "both", name: str | None = None, env: dict[str, str] | None = None
    ) -> HttpService:
        port = free_port()
        return HttpService(
            name or f"{service}-{side}-{port}",
            ["-m", "gateway", service, "--port", str(port), "--side", side],
            self.env | (env or {}),
            self.work_dir,
            port,
        )

    def projector(self, *projections: str, env: dict[str, str] | None = None) -> ServiceProcess:
        return ServiceProcess(
            f"{'+'.join(projections)}-projector",
            ["-m", "projectors", "run", *projections],
            self.env | (env or {}),
            self.work_dir,
        )

    def order_saga(
        self, catalog_url: str, orders_url: str, payments_url: str = "", env: dict[str, str] | None = None
    ) -> ServiceProcess:
        """The order saga, driving the catalog, orders and payments services at these URLs."""
        urls = {"COMMERCE_CATALOG_URL": catalog_url, "COMMERCE_ORDERS_URL": orders_url}
        return ServiceProcess(
            "order-saga",
            ["-m", "command_api.orders.saga_runner"],
            self.env | urls | ({"COMMERCE_PAYMENTS_URL": payments_url} if payments_url else {}) | (env or {}),
            self.work_dir,
        )

    def run_module(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *arguments],
            check=check,
            env={**os.environ, **self.env},
            capture_output=not check,
            text=True,
        )

    def admin_token(self) -> str:
        """An admin's token signed with this deployment's users key, for tests that run no users service."""
        issuer = load_issuer(self.settings)
        return issuer.issue(user_id=1, email=self.admin_email, role="admin", now=datetime.now(UTC))

    def service_token(self) -> str:
        """The token of a platform process (the order saga's kind), for the internal routes: signed
        with the service key, as only those are."""
        return service_token(load_service_issuer(self.settings), "tests", datetime.now(UTC))

    def customer_token(self, user_id: int) -> str:
        """A customer's token signed with this deployment's users key (the orders side trusts the token)."""
        issuer = load_issuer(self.settings)
        return issuer.issue(
            user_id=user_id, email=f"customer{user_id}@example.com", role="customer", now=datetime.now(UTC)
        )

    def catalog_offsets(self, projection: str) -> int:
        """How far a catalog projection has got, summed over partitions."""
        with psycopg.connect(self.database_url("catalog")) as conn:
            if conn.execute("SELECT to_regclass('projection_offsets')").fetchone() == (None,):
                return 0
            row = conn.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM projection_offsets WHERE projection = %s",
                (projection,),
            ).fetchone()
        return int(row[0]) if row else 0
