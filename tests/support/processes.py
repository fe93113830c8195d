"""Service processes started by the tests: real uvicorn and projector processes, as deployed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """One `python -m ...` process with its log in a file, stopped gracefully or killed."""

    def __init__(self, name: str, arguments: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.arguments = arguments
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, *self.arguments],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
        )
        return self

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def ensure_running(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self._process.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = 20) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def ensure_stopped_cleanly(self) -> None:
        """It exited by itself after a stop request (status 0), rather than being killed."""
        assert self._process is not None and self._process.returncode == 0, (
            f"{self.name} exited with {self._process and self._process.returncode}:\n{self.log_tail()}"
        )

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but does nothing, as a long GC pause or a frozen VM."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class HttpService(ServiceProcess):
    def __init__(
        self, name: str, arguments: list[str], env: dict[str, str], log_dir: Path, port: int
    ) -> None:
        super().__init__(name, arguments, env, log_dir)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> HttpService:
        super().start()
        self.wait_healthy()
        return self

    def wait_healthy(self, within: float = 90) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.ensure_running()
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not become healthy within {within}s:\n{self.log_tail()}")


def wait_until_partitions_split(
    context: str, instances: list[HttpService], partitions: int, admin_token: str
) -> None:
    """Wait until the instances' command sides own disjoint sets of ready partitions covering them all."""
    wait_until_split(context, [instance.url for instance in instances], partitions, admin_token)


def wait_until_split(context: str, urls: list[str], partitions: int, admin_token: str) -> None:
    """`wait_until_partitions_split` for the instances at these base URLs."""

    def ready(url: str) -> set[int]:
        headers = {"Authorization": f"Bearer {admin_token}"}
        body = httpx.get(f"{url}/internal/partitions", headers=headers, timeout=5).json()[context]
        return set(body["ready"])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        owned = [ready(url) for url in urls]
        if all(owned) and sum(map(len, owned)) == partitions == len(set().union(*owned)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{len(urls)} instances did not share the {partitions} partitions of {context}")
