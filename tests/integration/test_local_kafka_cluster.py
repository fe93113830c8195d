"""`infra/stack.sh up kafka-cluster` (what `KAFKA_BROKERS=3 ./run up` starts): three KRaft nodes whose
internal topics are replicated 3 times with min ISR 2; `kill kafka-N` crashes one node, and `up` brings
it back. Run from a copy of infra/ (the stack keeps its state beside it) on free ports, so that the
shared servers and the repository's .local/ are untouched."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support.kafka_cluster import KAFKA_LIB
from tests.support.servers import REPO, unavailable
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def six_free_ports() -> int:
    """The first of six consecutive ports nobody listens on (a node's broker and controller each)."""
    for _ in range(50):
        first = random.randrange(20_000, 30_000, 2)
        with ExitStack() as held:
            try:
                for port in range(first, first + 6):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise AssertionError("no six consecutive free ports")


async def describe(bootstrap: str) -> tuple[int, dict[str, str]]:
    """How many brokers the cluster has, and broker 1's configuration."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
        entries: list[Any] = response.resources[0][4]
        return brokers, {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


def test_the_stack_runs_three_brokers_replicating_3_2_and_brings_a_killed_one_back(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        unavailable("infra/stack.sh runs as root")
    if not any(KAFKA_LIB.glob("kafka_*.jar")):
        unavailable(f"no Kafka jars in {KAFKA_LIB} (`infra/stack.sh up kafka` fetches them)")
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    (tmp_path / ".local" / "kafka").mkdir(parents=True)
    (tmp_path / ".local" / "kafka" / "lib").symlink_to(KAFKA_LIB)
    first = six_free_ports()
    env = {**os.environ, "KAFKA_CLUSTER_PORT": str(first)}
    bootstrap = ",".join(f"127.0.0.1:{first + 2 * node}" for node in range(3))

    def stack(*arguments: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(tmp_path / "infra" / "stack.sh"), *arguments], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"stack.sh {' '.join(arguments)}:\n{done.stderr}"
        return done

    def cluster_status() -> str:
        (line,) = [line for line in stack("status").stdout.splitlines() if line.startswith("kafka-cluster")]
        return line

    try:
        stack("up", "kafka-cluster")
        brokers, config = asyncio.run(describe(bootstrap))
        assert brokers == 3
        replicated = ("offsets.topic.replication.factor", "transaction.state.log.replication.factor")
        assert [config[key] for key in replicated] == ["3", "3"]
        assert config["default.replication.factor"] == "3"
        assert config["transaction.state.log.min.isr"] == config["min.insync.replicas"] == "2"
        assert config["unclean.leader.election.enable"] == "false"
        assert " running " in cluster_status()

        stack("kill", "kafka-2")
        assert " 2/3 up " in cluster_status()
        assert "kafka-cluster: starting node 2" in stack("up", "kafka-cluster").stderr
        assert " running " in cluster_status()
        eventually(
            lambda: asyncio.run(describe(bootstrap))[0] == 3,
            within=30,
            what="broker 2 registered again",
            every=1,
        )
    finally:
        stack("down", "kafka-cluster")
    assert " stopped " in cluster_status()
