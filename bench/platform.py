"""The platform as users run it, for the bench's `platform` rows: `./run up`'s own process table
(`./run processes`: COMMERCE_INSTANCES instances of each service, every projector, the saga, the edge,
Prometheus) under supervisord, with tracing to a file as `./run up` sets it, on a deployment of the
bench's own (namespace, databases, keys) and on ports of its own, so that it runs beside a developer's
`./run up` and leaves the shop's data alone.

What differs from `./run up`, and why: the limits on callers are lifted (the load comes from one
address, which they would refuse at once); nothing else is changed. The figures are sampled from
/proc: the platform's processes are supervisord and everything below it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bench.procfs import cpu_seconds, descendants, machine_cpu_seconds, pss_mib, rss_mib, server_pids
from gateway.apps import PORTS
from infra.supervision import Supervision, Supervisor, parse_table
from tests.support.deployment import CALLER_LIMITS, PLACE, Deployment
from tests.support.processes import free_port
from tests.support.servers import REPO

# Added to the seed's ports (6000, 8000, 9000, 6002, the workers' 9101-9103): clear of a developer's
# `./run up` and of the servers.
PORT_OFFSET = 20000
# The settings a bench's deployment passes to the platform: where its data lives, and the limits on
# callers lifted (a load from one address would reach them at once); nothing else.
PLATFORM_SETTINGS = (*PLACE, *CALLER_LIMITS)

TRACE_EXPORTS = ("COMMERCE_TRACES_FILE", "COMMERCE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass
class Platform:
    """`./run up`'s processes on `deployment`, with their files in `directory`."""

    deployment: Deployment
    directory: Path
    edge_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    # As `./run up` runs it: every process writes its spans to a file, and Prometheus scrapes them all.
    # Off: no spans recorded or exported, and no Prometheus (each process still counts its metrics).
    telemetry: bool = True

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def supervision(self) -> Supervision:
        return Supervision(self.directory / "run")

    @property
    def env(self) -> dict[str, str]:
        deployment = {
            key: value for key, value in self.deployment.env.items() if _setting(key) in PLATFORM_SETTINGS
        }
        # Where spans go: the file `./run up` names, or nowhere (whatever the bench's own environment says).
        inherited = {key: value for key, value in os.environ.items() if key not in TRACE_EXPORTS}
        traces = (
            {"COMMERCE_TRACES_FILE": str(self.directory / "traces" / "spans.jsonl")} if self.telemetry else {}
        )
        return {
            **inherited,
            **deployment,
            **traces,
            "COMMERCE_PORT_OFFSET": str(PORT_OFFSET),
            "COMMERCE_PLATFORM_DIR": str(self.directory),
            "EDGE_PORT": str(self.edge_port),
            "PROMETHEUS_PORT": str(self.prometheus_port),
        }

    def table(self) -> str:
        """`./run processes` with this platform's ports and folders."""
        return subprocess.run(
            [str(REPO / "run"), "processes"], env=self.env, check=True, capture_output=True, text=True
        ).stdout

    def up(self) -> None:
        (self.directory / "traces").mkdir(parents=True, exist_ok=True)
        self._supervision("up")
        if not self.telemetry:
            Supervisor(self.supervision).stop("prometheus")

    def down(self) -> None:
        if self.supervision.pid_file.exists():
            self._supervision("down")

    def _supervision(self, command: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "infra.supervision", command, "--run-dir", str(self.supervision.run_dir)],
            input=self.table(),
            env=self.env,
            check=True,
            text=True,
            cwd=REPO,
        )

    def processes(self) -> dict[str, list[int]]:
        """Each process of the table, with its pid and its children's (nginx's workers, for one)."""
        states = Supervisor(self.supervision).states()
        return {name: [state.pid, *descendants(state.pid)] for name, state in states.items() if state.pid}

    def pids(self) -> list[int]:
        """supervisord and every process below it."""
        supervisord = int(self.supervision.pid_file.read_text())
        return [supervisord, *descendants(supervisord)]

    def instance_urls(self, service: str) -> list[str]:
        """The base URLs of a service's instances: the ports its seed's port names (6000, 6010, ...)."""
        ports = {PORTS[service] + PORT_OFFSET + 10 * n for n in range(9)}
        return [
            url.removesuffix("/health")
            for process in parse_table(self.table())
            for url in process.health_urls
            if urlsplit(url).port in ports
        ]

    def postgres_connections(self) -> int:
        """The connections open to the platform's four databases."""
        prefix = f"{self.deployment.namespace}_"
        with psycopg.connect(self.deployment.servers.postgres_admin_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE starts_with(datname, %s)", (prefix,)
            ).fetchone()
        return int(row[0]) if row else 0


def _setting(variable: str) -> str:
    return variable.removeprefix("COMMERCE_").lower()


@dataclass
class Usage:
    """What the platform used during a stretch of a run: peak RSS of its processes (summed), peak
    PostgreSQL connections, and CPU time (the platform's, and the whole machine's but the bench's own)."""

    peak_rss_mib: float = 0.0
    peak_pss_mib: float = 0.0
    peak_connections: int = 0
    platform_cpu_seconds: float = 0.0
    machine_cpu_seconds: float = 0.0
    samples: int = 0
    # CPU seconds of each process of the platform (its children included) and of each server.
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    # Peak RSS of each process of the platform (its children included).
    peak_rss_by_process: dict[str, float] = field(default_factory=dict)


@contextmanager
def sampled(platform: Platform, every: float = 0.5) -> Iterator[Usage]:
    """Sample the platform's RSS and connections every `every` seconds while the block runs (in a
    thread, so the block's event loop runs on), and count the CPU time it took."""
    usage = Usage()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pids = platform.pids()
            usage.peak_rss_mib = max(usage.peak_rss_mib, rss_mib(pids))
            for name, own in platform.processes().items():
                peak = usage.peak_rss_by_process.get(name, 0.0)
                usage.peak_rss_by_process[name] = max(peak, rss_mib(own))
            usage.peak_pss_mib = max(usage.peak_pss_mib, pss_mib(pids))
            usage.peak_connections = max(usage.peak_connections, platform.postgres_connections())
            usage.samples += 1
            done.wait(every)

    bench = [os.getpid()]
    each_before = cpu_by_process(platform)
    platform_before, machine_before, bench_before = (
        cpu_seconds(platform.pids()),
        machine_cpu_seconds(),
        cpu_seconds(bench),
    )
    sampler = threading.Thread(target=sample, name="platform-usage", daemon=True)
    sampler.start()
    try:
        yield usage
    finally:
        done.set()
        sampler.join()
        usage.platform_cpu_seconds = cpu_seconds(platform.pids()) - platform_before
        bench_used = cpu_seconds(bench) - bench_before
        usage.machine_cpu_seconds = machine_cpu_seconds() - machine_before - bench_used
        each_after = cpu_by_process(platform)
        usage.cpu_by_process = {
            name: used - each_before.get(name, 0.0) for name, used in sorted(each_after.items())
        }


def cpu_by_process(platform: Platform) -> dict[str, float]:
    """CPU seconds so far of each of the platform's processes and of each server."""
    groups = {**platform.processes(), **server_pids()}
    return {name: cpu_seconds(pids) for name, pids in groups.items()}
