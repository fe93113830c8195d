"""HTTP load from wrk, in its own process: the bench's Python never generates load on the cores it
measures. Runs wrk with `--latency`, optionally with a Lua script rendered from bench/lua/, and parses
its report (requests/s, p50, p99, non-2xx answers, socket errors).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"

# Two threads on a 2-core machine; the same for every run, baselines included, so ratios compare
# like with like.
THREADS = 2
# Well above any answer we expect: a slow answer is a latency to report, not a socket error.
TIMEOUT = "10s"

LuaValue = str | int | Sequence[str] | Sequence[int]


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts answers with a status above 399
    socket_errors: int  # connect, read, write and timeout errors

    @property
    def ok_per_second(self) -> float:
        """Answers below 400 per second: what a client got done."""
        return max(self.requests - self.non_2xx, 0) / self.seconds

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*(?P<number>[\d.]+)(?P<unit>us|ms|s|m|h)\s*$")
_PERCENTILE = re.compile(r"^\s*(?P<percent>50|99)(?:\.0+)?%\s+(?P<value>[\d.]+(?:us|ms|s|m|h))\s*$", re.M)
_TOTAL = re.compile(r"^\s*(?P<requests>\d+) requests in (?P<seconds>[\d.]+(?:us|ms|s|m|h))", re.M)
_RATE = re.compile(r"^Requests/sec:\s*(?P<rate>[\d.]+)", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s*(?P<count>\d+)", re.M)
_SOCKET_ERRORS = re.compile(r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M)


def milliseconds(text: str) -> float:
    """wrk's duration text (`812.00us`, `4.21ms`, `1.02s`, `1.00m`) in milliseconds."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found["number"]) * _UNITS_MS[found["unit"]]


def parse_report(output: str) -> WrkResult:
    """The figures of wrk's report (run with `--latency`)."""
    percentiles = {m["percent"]: milliseconds(m["value"]) for m in _PERCENTILE.finditer(output)}
    total, rate = _TOTAL.search(output), _RATE.search(output)
    if total is None or rate is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"could not read wrk's report:\n{output[-2000:]}")
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests=int(total["requests"]),
        seconds=milliseconds(total["seconds"]) / 1000,
        requests_per_second=float(rate["rate"]),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx["count"]) if non_2xx else 0,
        socket_errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
    )


def ensure_wrk() -> str:
    """wrk's executable, installed with apt-get when missing (the bench runs as root, like ./run)."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed; install the `wrk` package (apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    installed = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=False)
    if installed.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True)
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("apt-get installed wrk, but it is not on PATH")
    return found


def lua_literal(value: LuaValue) -> str:
    """A Lua literal for a string, an integer or a list of either. Strings use long brackets, so
    nothing in them needs escaping (JSON bodies, tokens)."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        level = 0
        while f"]{'=' * level}]" in value:
            level += 1
        return f"[{'=' * level}[{value}]{'=' * level}]"
    return "{" + ", ".join(lua_literal(item) for item in value) + "}"


def render_script(template: str, values: Mapping[str, LuaValue], destination: Path) -> Path:
    """bench/lua/<template>, preceded by a `bench` table holding `values`, written to `destination`."""
    fields = "".join(f"  {name} = {lua_literal(value)},\n" for name, value in values.items())
    body = (LUA_DIR / template).read_text()
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(
        f"-- rendered by the bench from bench/lua/{template}\nbench = {{\n{fields}}}\n\n{body}"
    )
    return destination


def wrk_arguments(url: str, connections: int, seconds: float, script: Path | None) -> list[str]:
    return [
        ensure_wrk(),
        f"--threads={min(THREADS, connections)}",
        f"--connections={connections}",
        f"--duration={max(round(seconds), 1)}s",
        f"--timeout={TIMEOUT}",
        "--latency",
        *([f"--script={script}"] if script is not None else []),
        url,
    ]


async def run_wrk(url: str, connections: int, seconds: float, script: Path | None = None) -> WrkResult:
    """One wrk run against `url` (its scheme, host and port; a script sets paths and bodies)."""
    process = await asyncio.create_subprocess_exec(
        *wrk_arguments(url, connections, seconds, script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await process.communicate()
    except BaseException:  # cancelled (Ctrl-C, SIGTERM): no wrk outlives the bench
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    output = stdout.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(
            f"wrk exited with {process.returncode}:\n{output}{stderr.decode(errors='replace')}"
        )
    return parse_report(output)
