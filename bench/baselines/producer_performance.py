"""Kafka's own producer benchmark, `org.apache.kafka.tools.ProducerPerformance` (what
`kafka-producer-perf-test.sh` runs), at the broker's version: the rate a JVM producer gets from this
broker, as the ceiling beside our Python producers.

    python -m bench.baselines.producer_performance [--records 200000] [--record-size 512]

Its jars are copied once with Maven (infra/kafka/tools/pom.xml) under .local/, like the broker's.
Needs Kafka, Java and Maven.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / "infra" / "kafka" / "tools"
TOOLS_POM = TOOLS_DIR / "pom.xml"
TOOLS_LOG4J = TOOLS_DIR / "log4j2.properties"
TOOLS_LIB = REPO_ROOT / ".local" / "kafka-tools" / "lib"
MAIN_CLASS = "org.apache.kafka.tools.ProducerPerformance"

PARTITIONS = 6

# What bin/kafka-producer-perf-test.sh and kafka-run-class.sh give the JVM; an English locale so that
# the numbers it prints parse the same everywhere.
JVM_OPTIONS = [
    "-Xmx512M",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
    "-Duser.language=en",
    "-Duser.country=US",
]

# The tool's last line, e.g. "200000 records sent, 98425.196850 records/sec (48.06 MB/sec), 212.81 ms
# avg latency, 398.00 ms max latency, 201 ms 50th, 370 ms 95th, 390 ms 99th, 397 ms 99.9th."
SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<records_per_second>[\d.]+) records/sec "
    r"\((?P<mb_per_second>[\d.]+) MB/sec\), (?P<avg_latency_ms>[\d.]+) ms avg latency, "
    r"(?P<max_latency_ms>[\d.]+) ms max latency, (?P<p50_ms>\d+) ms 50th, (?P<p95_ms>\d+) ms 95th, "
    r"(?P<p99_ms>\d+) ms 99th, (?P<p999_ms>\d+) ms 99.9th"
)


def tools_classpath() -> str:
    """The tool's classpath; its jars are copied from Maven (cached in ~/.m2) on first use, and again
    only when the pom changes."""
    stamp = TOOLS_LIB / ".pom.sha256"
    want = hashlib.sha256(TOOLS_POM.read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text().strip() == want):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(
                "Maven (mvn) is needed to fetch Kafka's tools; `infra/stack.sh up kafka` installs it"
            )
        staging = TOOLS_LIB.with_name(f"lib.{uuid.uuid4().hex[:8]}")
        command = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(TOOLS_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        fetched = subprocess.run(command, capture_output=True, text=True, check=False)
        if fetched.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(
                f"maven failed: {' '.join(command)}\n{fetched.stdout[-4000:]}{fetched.stderr[-4000:]}"
            )
        (staging / ".pom.sha256").write_text(want + "\n")
        shutil.rmtree(TOOLS_LIB, ignore_errors=True)
        staging.rename(TOOLS_LIB)
    return f"{TOOLS_LIB}{os.sep}*"


def java_executable() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH (as infra/stack.sh chooses for the broker)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java is needed to run Kafka's tools; `infra/stack.sh up kafka` installs it")
    return java


def parse_summary(output: str) -> dict[str, float]:
    """The figures of the tool's final summary line (the windowed progress lines lack percentiles)."""
    found = list(SUMMARY.finditer(output))
    if not found:
        raise RuntimeError(f"no summary line in ProducerPerformance's output:\n{output[-2000:]}")
    return {name: float(value) for name, value in found[-1].groupdict().items()}


async def create_topic(bootstrap_servers: str, topic: str) -> bool:
    """Create `topic` (6 partitions, replication 1); False when it existed already."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    except TopicAlreadyExistsError:
        return False
    finally:
        await admin.close()
    return True


async def delete_topic(bootstrap_servers: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def producer_performance_async(
    bootstrap_servers: str, topic: str, records: int, record_size: int, acks: str = "all"
) -> dict[str, float]:
    """Run ProducerPerformance (unthrottled) once; see `producer_performance`."""
    classpath = await asyncio.to_thread(tools_classpath)
    command = [
        java_executable(),
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={TOOLS_LOG4J}",
        "-cp",
        classpath,
        MAIN_CLASS,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        # The current name of --producer-props, which this version deprecates.
        "--command-property",
        f"bootstrap.servers={bootstrap_servers}",
        f"acks={acks}",
    ]
    created = await create_topic(bootstrap_servers, topic)
    try:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await process.communicate()
        seconds = time.perf_counter() - started
    finally:
        if created:  # never delete a topic this run did not create
            with contextlib.suppress(Exception):
                await delete_topic(bootstrap_servers, topic)
    output = stdout.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(
            f"ProducerPerformance exited with {process.returncode}:\n{output[-2000:]}"
            f"{stderr.decode(errors='replace')[-2000:]}"
        )
    return parse_summary(output) | {"record_size": float(record_size), "process_seconds": seconds}


def producer_performance(
    bootstrap_servers: str, topic: str, records: int, record_size: int, acks: str = "all"
) -> dict[str, float]:
    """Kafka's ProducerPerformance, unthrottled, into `topic` (created with 6 partitions and
    replication 1 when missing, and then deleted again), as a dict of floats: records,
    records_per_second, mb_per_second, avg_latency_ms, max_latency_ms, p50_ms, p95_ms, p99_ms,
    p999_ms (the tool's final summary), record_size, and process_seconds (the whole JVM run, start-up
    included). Runs its own event loop: from async code, await `producer_performance_async`."""
    return asyncio.run(producer_performance_async(bootstrap_servers, topic, records, record_size, acks))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.producer_performance")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--record-size", type=int, default=512)
    parser.add_argument("--acks", default="all")
    args = parser.parse_args()
    topic = f"bench-producer-performance-{uuid.uuid4().hex[:8]}"
    figures = producer_performance(args.bootstrap_servers, topic, args.records, args.record_size, args.acks)
    for name, value in figures.items():
        print(f"{name:<20} {value:>14,.2f}")


if __name__ == "__main__":
    main()
