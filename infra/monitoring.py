"""Prometheus for the platform: it scrapes every instance of every service and every projector and saga
process, records the dashboard's series (infra/prometheus/rules.yml) and serves the console page
(infra/prometheus/consoles/commerce.html, at /consoles/commerce.html).

`python -m infra.monitoring serve --port 9090 --target users=127.0.0.1:6000,127.0.0.1:6010 ...` writes
the configuration and becomes Prometheus (in the foreground, so `./run` and the tests own its process).
`python -m infra.monitoring compose-config` prints the configuration docker-compose.yml mounts
(infra/prometheus/prometheus.docker.yml), rendered by the same function.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from config.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_FILES = REPO_ROOT / "infra" / "prometheus"
RULES = PROMETHEUS_FILES / "rules.yml"
CONSOLES = PROMETHEUS_FILES / "consoles"
CONSOLE_LIBRARIES = PROMETHEUS_FILES / "console_libraries"
COMPOSE_CONFIG = PROMETHEUS_FILES / "prometheus.docker.yml"

# A job name is a label value the rules and the dashboards select on: the service's or the process's name.
_JOB_NAME = re.compile(r"^[a-z][a-z0-9-]*$")

# The compose network's targets: the services on the seed's ports, and the workers on the metrics port
# docker-compose.yml gives them (COMMERCE_PROJECTOR_METRICS_PORT, on 0.0.0.0 inside their container).
COMPOSE_WORKER_METRICS_PORT = 9100
COMPOSE_TARGETS: dict[str, list[str]] = {
    "users": ["users:6000"],
    "catalog": ["catalog:8000"],
    "orders": ["orders:9000"],
    "payments": ["payments:6002"],
    **{
        worker: [f"{worker}:{COMPOSE_WORKER_METRICS_PORT}"]
        for worker in (
            "users-projector",
            "catalog-projectors",
            "orders-projectors",
            "order-saga",
            "payments-projectors",
        )
    },
}


@dataclass(frozen=True)
class Monitoring:
    port: int
    targets: dict[str, list[str]]  # job -> its instances' host:port
    work_dir: Path
    host: str = "127.0.0.1"
    # The seed scraped every 15 s; 5 s shows a burst of orders on the per-minute panels within seconds.
    scrape_interval_seconds: int = 5
    # Local history is for watching the platform run, not for capacity planning.
    retention: str = "2d"
    # Sent as `Authorization: Bearer` to every target (COMMERCE_METRICS_TOKEN): the services' /metrics
    # demands it when it is set; the workers' metrics servers ignore it.
    metrics_token: str = ""
    rules_file: Path = RULES
    # Targets are names to resolve (a compose network's services, each replica an instance), not addresses.
    by_dns: bool = False

    @property
    def config_file(self) -> Path:
        return self.work_dir / "prometheus.yml"

    @property
    def token_file(self) -> Path:
        return self.work_dir / "metrics-token"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"


def _quoted(text: str | Path) -> str:
    """A YAML double-quoted scalar (a JSON string is one)."""
    return json.dumps(str(text))


def _job(name: str, targets: list[str], token_file: Path | None, by_dns: bool) -> str:
    lines = [f"  - job_name: {_quoted(name)}"]
    if token_file is not None:
        lines += [
            "    authorization:",
            "      type: Bearer",
            f"      credentials_file: {_quoted(token_file)}",
        ]
    if by_dns:  # every address the name resolves to: each replica of a scaled compose service
        lines.append("    dns_sd_configs:")
        for target in targets:
            host, _, port = target.rpartition(":")
            lines += [f"      - names: [{_quoted(host)}]", "        type: A", f"        port: {port}"]
    else:
        lines += [
            "    static_configs:",
            f"      - targets: [{', '.join(_quoted(target) for target in targets)}]",
        ]
    return "\n".join(lines)


def prometheus_config(monitoring: Monitoring, *, self_target: str | None = None) -> str:
    """One job per service and per worker process kind; every instance of a job is a target, labelled
    by its address (`instance`). The token is read from a file, so the configuration holds no secret."""
    interval = f"{monitoring.scrape_interval_seconds}s"
    token_file = monitoring.token_file if monitoring.metrics_token else None
    jobs = [_job("prometheus", [self_target or f"{monitoring.host}:{monitoring.port}"], None, False)]
    jobs += [
        _job(name, targets, token_file, monitoring.by_dns) for name, targets in monitoring.targets.items()
    ]
    return f"""# Written by `python -m infra.monitoring`; edit infra/monitoring.py, not this file.
global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
  evaluation_interval: {interval}
rule_files:
  - {_quoted(monitoring.rules_file)}
scrape_configs:
{chr(10).join(jobs)}
"""


def write_config(monitoring: Monitoring) -> Path:
    monitoring.data_dir.mkdir(parents=True, exist_ok=True)
    if monitoring.metrics_token:
        monitoring.token_file.touch(mode=0o600)
        monitoring.token_file.chmod(0o600)
        monitoring.token_file.write_text(monitoring.metrics_token)
    else:
        monitoring.token_file.unlink(missing_ok=True)
    monitoring.config_file.write_text(prometheus_config(monitoring))
    return monitoring.config_file


def compose_config() -> str:
    """What docker-compose.yml mounts: the compose network's services, found by name so that every replica
    of a scaled one is scraped, the rules where the service mounts them, and Prometheus itself."""
    monitoring = Monitoring(
        9090, COMPOSE_TARGETS, Path("/prometheus"), rules_file=Path("/etc/prometheus/rules.yml"), by_dns=True
    )
    return prometheus_config(monitoring, self_target="localhost:9090")


def prometheus_command(monitoring: Monitoring) -> list[str]:
    """Prometheus in the foreground (its owner stops it with SIGTERM), its data under the work dir."""
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    return [
        prometheus,
        f"--config.file={monitoring.config_file}",
        f"--storage.tsdb.path={monitoring.data_dir}",
        f"--storage.tsdb.retention.time={monitoring.retention}",
        f"--web.listen-address={monitoring.host}:{monitoring.port}",
        f"--web.console.templates={CONSOLES}",
        f"--web.console.libraries={CONSOLE_LIBRARIES}",
        "--web.page-title=commerce: Prometheus",
    ]


def _target(text: str) -> tuple[str, list[str]]:
    job, _, addresses = text.partition("=")
    if not _JOB_NAME.match(job) or job == "prometheus" or not addresses:
        raise argparse.ArgumentTypeError(f"expected JOB=HOST:PORT[,HOST:PORT...], got {text!r}")
    return job, addresses.split(",")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.monitoring")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="write the configuration and run Prometheus in the foreground")
    serve.add_argument("--port", type=int, default=9090)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--work-dir", type=Path, default=Path(".local/prometheus"))
    serve.add_argument("--target", type=_target, action="append", required=True)
    serve.add_argument("--scrape-interval", type=int, default=5, help="seconds")
    serve.add_argument("--retention", default="2d")
    commands.add_parser("compose-config", help="print infra/prometheus/prometheus.docker.yml")
    args = parser.parse_args()
    if args.command == "compose-config":
        print(compose_config(), end="")
        return
    monitoring = Monitoring(
        args.port,
        dict(args.target),
        args.work_dir.resolve(),
        host=args.host,
        scrape_interval_seconds=args.scrape_interval,
        retention=args.retention,
        metrics_token=get_settings().metrics_token,
    )
    write_config(monitoring)
    command = prometheus_command(monitoring)
    os.execv(command[0], command)  # noqa: S606 (the process is Prometheus itself; `./run` keeps its pid)


if __name__ == "__main__":
    main()
