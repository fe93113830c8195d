"""A real nginx edge (infra/edge.py) in front of a test deployment's services, on a free port."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from infra.edge import Edge
from tests.support.processes import HttpService, ServiceProcess, free_port
from tests.support.servers import unavailable


def nginx_or_unavailable() -> None:
    """No nginx: a skip on a developer's machine, a failure in CI (`./run test` installs it)."""
    if shutil.which("nginx") is None:
        unavailable("nginx is not installed (infra/stack.sh tools nginx)")


class EdgeProcess(HttpService):
    """`python -m infra.edge serve`, which becomes nginx in the foreground: SIGTERM stops it."""

    def __init__(
        self,
        name: str,
        upstreams: dict[str, list[str]],
        work_dir: Path,
        environment: Literal["local", "production"] = "local",
    ) -> None:
        port = free_port()
        self.edge = Edge(port, upstreams, work_dir / name, environment=environment)
        self.edge.work_dir.mkdir(parents=True, exist_ok=True)
        arguments = ["-m", "infra.edge", "serve", "--port", str(port), "--environment", environment]
        arguments += ["--work-dir", str(self.edge.work_dir)]
        for service, instances in upstreams.items():
            arguments += ["--upstream", f"{service}={','.join(instances)}"]
        super().__init__(name, arguments, {}, work_dir, port)

    def start(self) -> EdgeProcess:
        nginx_or_unavailable()
        ServiceProcess.start(self)
        self.wait_healthy(within=30)  # nginx answers at once, unlike a service reading its log
        return self

    def access_log(self) -> list[str]:
        """The access log's lines so far; nginx writes it out at least every second (`flush=1s`)."""
        path = self.edge.work_dir / "access.log"
        return path.read_text().splitlines() if path.exists() else []


def address(url: str) -> str:
    """host:port of a service URL, as an upstream names it."""
    return url.removeprefix("http://")
