"""Private Apache Kafka clusters for fault tests: N KRaft nodes (each a broker and a controller) from
the local stack's jars, JVM options and config template, on free ports, with their data in a
directory of the test's. Killing one of their brokers disturbs no other test: the shared broker
stays untouched.

`infra/stack.sh up kafka-cluster` starts the same nodes for people; this starts them from Python so
that a test owns the processes (kill one, start it again, stop them all at the end).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.support.deployment import Deployment
from tests.support.servers import REPO, Servers, unavailable

KAFKA_LIB = REPO / ".local" / "kafka" / "lib"  # filled by `infra/stack.sh up kafka`
TEMPLATE = REPO / "infra" / "kafka" / "server.properties.template"
JVM_OPTIONS = REPO / "infra" / "kafka" / "jvm.options"
LOG4J = REPO / "infra" / "kafka" / "log4j2.properties"
STARTED_LINE = "Kafka Server started"
# A crashed broker's partitions get new leaders once the controller has missed its heartbeats for
# this long (Kafka's default is 9 s); the same values as `infra/stack.sh up kafka-cluster`.
SESSION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS = 3000, 500
READY_WITHIN = 90.0


def kafka_uuid() -> str:
    """A Kafka Uuid as its tools print one: 16 random bytes, URL-safe base64 without padding (one
    that starts with '-' would read as an option, so Kafka never makes those)."""
    while (text := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return text


def render(template: str, values: dict[str, str]) -> str:
    """The template with its @KEY@ tokens replaced; a token left over is an error (as in stack.sh)."""
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    if left := re.search(r"@[A-Z_]+@", template):
        raise ValueError(f"unreplaced token {left[0]} in {TEMPLATE}")
    return template


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on (each held until all are chosen)."""
    with ExitStack() as held:
        probes = [held.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return str(Path(home, "bin", "java"))
    found = shutil.which("java")
    if found is None:
        unavailable("no java on PATH for a private Kafka cluster")
    assert found is not None
    return found


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log(self) -> Path:
        return self.directory / "logs" / "server.log"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """N nodes; `bootstrap` lists every broker. Start with `kafka_cluster()`, which also stops it."""

    def __init__(self, work_dir: Path, brokers: int) -> None:
        self.brokers = brokers
        ports = free_ports(2 * brokers)
        self.nodes = {
            node_id: KafkaNode(
                node_id, ports[2 * node_id - 2], ports[2 * node_id - 1], work_dir / f"node-{node_id}"
            )
            for node_id in range(1, brokers + 1)
        }
        self.replication_factor = min(brokers, 3)
        self.min_insync_replicas = 2 if brokers >= 3 else 1

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes.values())

    # lifecycle

    def start(self) -> KafkaCluster:
        if not any(KAFKA_LIB.glob("kafka_*.jar")):
            unavailable(f"no Kafka jars in {KAFKA_LIB} (`infra/stack.sh up kafka` fetches them)")
        quorum = ",".join(f"127.0.0.1:{node.controller_port}" for node in self.nodes.values())
        for node in self.nodes.values():
            (node.directory / "logs").mkdir(parents=True)
            node.config.write_text(
                render(
                    TEMPLATE.read_text(),
                    {
                        "KAFKA_NODE_ID": str(node.node_id),
                        "KAFKA_PORT": str(node.port),
                        "KAFKA_CONTROLLER_PORT": str(node.controller_port),
                        "KAFKA_CONTROLLER_QUORUM": quorum,
                        "KAFKA_DATA_DIR": str(node.directory / "data"),
                        "KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
                        "KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
                        "KAFKA_BROKER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
                        "KAFKA_BROKER_HEARTBEAT_INTERVAL_MS": str(HEARTBEAT_INTERVAL_MS),
                    },
                )
            )
        self._format()
        for node in self.nodes.values():
            self._launch(node)
        for node in self.nodes.values():
            self._wait_started(node, since=0)
        return self

    def _format(self) -> None:
        """Every node's storage, in parallel (a JVM each): one cluster id, one initial quorum of all."""
        cluster_id = kafka_uuid()
        if self.brokers == 1:
            quorum = ["--standalone"]
        else:
            voters = ",".join(
                f"{node.node_id}@127.0.0.1:{node.controller_port}:{kafka_uuid()}"
                for node in self.nodes.values()
            )
            quorum = ["--initial-controllers", voters]
        formats = [
            subprocess.Popen(
                [
                    *self._java(node),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(node.config),
                    *quorum,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for node in self.nodes.values()
        ]
        for formatting in formats:
            output, _ = formatting.communicate(timeout=READY_WITHIN)
            if formatting.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed:\n{output.decode(errors='replace')}")

    def _java(self, node: KafkaNode) -> list[str]:
        return [
            java(),
            f"@{JVM_OPTIONS}",
            "-cp",
            f"{KAFKA_LIB}/*",
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
            f"-Dlog4j2.configurationFile={LOG4J}",
        ]

    def _launch(self, node: KafkaNode) -> None:
        with (node.directory / "logs" / "stdout.log").open("ab") as output:
            node.process = subprocess.Popen(
                [*self._java(node), "kafka.Kafka", str(node.config)], stdout=output, stderr=output
            )

    def _wait_started(self, node: KafkaNode, since: int) -> None:
        """Until the node logs that it has started (after `since` bytes of its log)."""
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if not node.running:
                raise AssertionError(f"Kafka node {node.node_id} exited while starting:\n{node.log_tail()}")
            if node.log.exists():
                with node.log.open("rb") as log:
                    log.seek(since)
                    if STARTED_LINE.encode() in log.read():
                        return
            time.sleep(0.2)
        raise AssertionError(
            f"Kafka node {node.node_id} not started within {READY_WITHIN}s:\n{node.log_tail()}"
        )

    def kill(self, node_id: int) -> None:
        """SIGKILL, as a crash: no controlled shutdown, no leadership handed over."""
        process = self.nodes[node_id].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, node_id: int) -> None:
        """Start a stopped node again on its ports and data; returns once it has started."""
        node = self.nodes[node_id]
        assert not node.running, f"Kafka node {node_id} is still running"
        since = node.log.stat().st_size if node.log.exists() else 0
        self._launch(node)
        self._wait_started(node, since)

    def stop(self) -> None:
        for node_id in self.nodes:
            self.kill(node_id)

    # who does what

    def leader(self, topic: str, partition: int) -> int:
        """The node id of the broker that leads this partition now (-1: none)."""
        return asyncio.run(self._leaders(topic))[partition]

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> the node id of its leader (-1: none)."""
        return asyncio.run(self._leaders(topic))

    async def _leaders(self, topic: str) -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
            return {p["partition"]: p["leader"] for p in described["partitions"]}
        finally:
            await admin.close()


@contextmanager
def kafka_cluster(work_dir: Path, brokers: int = 3) -> Iterator[KafkaCluster]:
    """A private cluster of `brokers` nodes (1 or 3), started, and killed at the end."""
    cluster = KafkaCluster(work_dir, brokers)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def deployment_on(cluster: KafkaCluster, servers: Servers, work_dir: Path) -> Deployment:
    """A deployment whose topics (with the cluster's replication) and processes use the private
    cluster; PostgreSQL and Elasticsearch stay the shared ones."""
    deployment = Deployment(
        replace(servers, kafka_bootstrap=cluster.bootstrap),
        work_dir,
        kafka_replication_factor=cluster.replication_factor,
        kafka_min_insync_replicas=cluster.min_insync_replicas,
    )
    deployment.provision()
    return deployment
