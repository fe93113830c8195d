"""What the bench reads of its processes from /proc: memory, CPU time, children."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM), None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (worker processes behind one port, for example)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return sorted(found)


def rss_mib(pids: list[int]) -> float:
    return sum(proc_status_kib(pid, "VmRSS") or 0 for pid in pids) / 1024


def pss_mib(pids: list[int]) -> float:
    """Proportional set size, summed: each page shared by N processes counts 1/N in each, so the sum is
    what the processes cost together (an RSS sum counts the shared libraries once per process)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
        except OSError:
            continue
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (their ended children's included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every core, all but idle and iowait)."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


# The servers' processes, by what their command lines hold.
SERVERS = {
    "kafka": "kafka.Kafka",
    "postgres": "postgres",
    "elasticsearch": "org.elasticsearch.bootstrap.Elasticsearch",
}


def server_pids() -> dict[str, list[int]]:
    """The local servers' processes (PostgreSQL's backends among them), by server."""
    found: dict[str, list[int]] = {name: [] for name in SERVERS}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for name, mark in SERVERS.items():
            # PostgreSQL's processes name themselves ("postgres: users db ... idle").
            if command.startswith(mark) if name == "postgres" else mark in command:
                found[name].append(int(entry.name))
    return found
