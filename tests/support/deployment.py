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
from pathlib import Path

import psycopg
from psycopg import sql

from config.settings import Settings
from infra.topics import ensure_topics
from tests.support.processes import HttpService, ServiceProcess, free_port
from tests.support.servers import Servers

_OVERRIDDEN = (
    "namespace",
    "kafka_bootstrap_servers",
    "users_database_url",
    "elasticsearch_url",
    "jwt_private_key_file",
    "jwt_public_key_file",
    "admin_emails",
    "command_timeout_seconds",
)


@dataclass
class Deployment:
    servers: Servers
    work_dir: Path
    namespace: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    admin_email: str = "admin@example.com"

    def database_url(self, service: str) -> str:
        return self.servers.postgres_admin_url.rsplit("/", 1)[0] + f"/{self.namespace}_{service}"

    @property
    def settings(self) -> Settings:
        return Settings(
            namespace=self.namespace,
            kafka_bootstrap_servers=self.servers.kafka_bootstrap,
            users_database_url=self.database_url("users"),
            elasticsearch_url=self.servers.elasticsearch_url,
            jwt_private_key_file=self.work_dir / "keys" / "jwt.pem",
            jwt_public_key_file=self.work_dir / "keys" / "jwt.pub.pem",
            admin_emails=[self.admin_email],
            command_timeout_seconds=3,
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
        asyncio.run(ensure_topics(self.settings))
        with psycopg.connect(self.servers.postgres_admin_url, autocommit=True) as admin:
            for service in ("users",):
                name = f"{self.namespace}_{service}"
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def gateway(self, service: str, side: str = "both", name: str | None = None) -> HttpService:
        port = free_port()
        return HttpService(
            name or f"{service}-{side}-{port}",
            ["-m", "gateway", service, "--port", str(port), "--side", side],
            self.env,
            self.work_dir,
            port,
        )

    def projector(self, projection: str) -> ServiceProcess:
        return ServiceProcess(
            f"{projection}-projector", ["-m", "projectors", "run", projection], self.env, self.work_dir
        )

    def run_module(self, *arguments: str) -> None:
        subprocess.run([sys.executable, "-m", *arguments], check=True, env={**os.environ, **self.env})
