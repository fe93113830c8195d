"""supervisord for the platform's processes: `./run up` starts them under it, supervisord restarts any
that dies, and `./run status` shows how often it had to.

`./run` prints its process table (one `name|environment|python arguments|health URLs` line per process,
in start order; an instance of the services answers on several ports) into
`python -m infra.supervision up|down|status --run-dir .local/run`:

- `up` writes `supervisord.conf` there from the table, starts supervisord (a daemon in a session of its
  own, so nothing sent to the shell that ran `./run up` reaches it or its children) or has the running
  one take up the new file, then starts the processes one by one in the table's order, each HTTP process
  only once the one before answers all its health URLs, and returns when all of them run;
- `down` stops them in the reverse order (SIGTERM, SIGKILL after a grace period) and then supervisord;
- `status` shows each process's state and how many times supervisord restarted it.

supervisord counts no restarts itself, so `restart_counts` reads them from its log (`supervisord.log`,
never rotated): a `spawned:` line that follows an `exited:` line of the same process, with no `stopped:`
or `gave up:` between, is a restart. `exited:` is what supervisord logs for a process that ended without
being asked to (a crash, a kill, even exit status 0); a stop it was asked for logs `stopped:`, and a
start asked for after it gave up follows `gave up:`. Only the lines since the newest
`supervisord started with pid` count: the restarts of the daemon that runs now.

Every program starts as `python -m infra.supervision exec ARGS`, which asks for SIGTERM when supervisord
dies, kills what a dead process of the platform left behind and then becomes `python ARGS` (same pid, so
supervisord's signals reach it). supervisord kills a process's group only when it stops it; nginx's
workers outlive a master killed by anything else and keep its port, so the edge could never come back.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
import xmlrpc.client
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

REPO_ROOT = Path(__file__).resolve().parent.parent

# A process up this long has started; one that exits sooner is a failed start, retried after 1 s, 2 s,
# ... until START_RETRIES failures in a row make supervisord give up on it (FATAL). One that dies after
# it started is restarted at once, however often.
START_SECONDS = 5
START_RETRIES = 10
# Every process stops cleanly on SIGTERM; one still running this long after it gets SIGKILL (as its
# whole process group: nginx's workers).
STOP_WAIT_SECONDS = 20
# A process log is rotated to NAME.log.1 at this size: at most twice it per process.
PROCESS_LOG_MAX_BYTES = 64 * 1024 * 1024
# How long `up` waits for an HTTP process's health URL, and for supervisord to answer.
HEALTH_WAIT_SECONDS = 90
DAEMON_WAIT_SECONDS = 30

# supervisord's process states (supervisor.states.ProcessStates): started and not yet asked to stop.
RUNNING_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_ENVIRONMENT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# supervisord's log lines: `2025-01-31 12:00:00,123 INFO spawned: 'users' with pid 4242`.
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ (?P<message>.*)$")
_SPAWNED = re.compile(r"^spawned: '(?P<name>[^']+)' with pid \d+")
_ENDED = re.compile(r"^(?P<how>exited|stopped|gave up): (?P<name>\S+) ")
_DAEMON_STARTED = "supervisord started with pid "
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Process:
    """One row of `./run`'s process table."""

    name: str
    args: tuple[str, ...]  # after `python`
    environment: dict[str, str] = field(default_factory=dict)  # on top of the one `./run up` was given
    health_urls: tuple[str, ...] = ()  # every URL that answers once it is ready (none: no HTTP endpoint)


def parse_table(text: str) -> list[Process]:
    """The processes of `./run`'s table, in start order."""
    processes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, environment, args, health_urls = line.split("|")
        if not _NAME.match(name):
            raise ValueError(f"a process name is lowercase letters, digits and dashes: {name!r}")
        pairs = [pair.partition("=") for pair in environment.split()]
        if not all(equals for _, equals, _ in pairs):
            raise ValueError(f"{name}: the environment is KEY=VALUE pairs: {environment!r}")
        variables = {key: value for key, _, value in pairs}
        processes.append(Process(name, tuple(args.split()), variables, tuple(health_urls.split())))
    if len({process.name for process in processes}) != len(processes):
        raise ValueError("two processes of the table have one name")
    return processes


@dataclass(frozen=True)
class Supervision:
    """Where supervisord keeps its files: all in `.local/run/`, beside the processes' logs."""

    run_dir: Path

    @property
    def config_file(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "supervisord.log"

    def process_log(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"


def _literal(text: str) -> str:
    """`text` as supervisord reads it back: it expands `%(name)s` in every value."""
    if "\n" in text:
        raise ValueError(f"no line breaks in supervisord's settings: {text!r}")
    return text.replace("%", "%%")


def _environment(environment: dict[str, str]) -> str:
    for key, value in environment.items():
        if not _ENVIRONMENT_KEY.match(key) or '"' in value:
            raise ValueError(f"cannot pass {key}={value!r} through supervisord's environment setting")
    return ",".join(f'{key}="{_literal(value)}"' for key, value in environment.items())


def supervisord_config(
    processes: Sequence[Process], supervision: Supervision, *, python: Path, user: str, directory: Path
) -> str:
    """supervisord's configuration: every process stopped until `up` starts it in order (`autostart`
    would start them all at once), then restarted whenever it ends, its output appended to its log."""
    run_dir = supervision.run_dir
    sections = [
        f"""; Written by `python -m infra.supervision up` from ./run's process table; edit `run`, not this file.
[supervisord]
logfile={_literal(str(supervision.log_file))}
; `./run status` counts restarts from this log: it is never rotated away.
logfile_maxbytes=0
loglevel=info
pidfile={_literal(str(supervision.pid_file))}
directory={_literal(str(directory))}
childlogdir={_literal(str(run_dir))}
; The user `./run up` runs as (supervisord changes nothing then; it only stops warning about root).
user={_literal(user)}

[unix_http_server]
file={_literal(str(supervision.socket))}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_literal(str(supervision.socket))}
"""
    ]
    for order, process in enumerate(processes, start=1):
        command = shlex.join([str(python), "-m", "infra.supervision", "exec", *process.args])
        lines = [
            f"[program:{process.name}]",
            f"command={_literal(command)}",
            f"directory={_literal(str(directory))}",
            # The start order; supervisord's own shutdown stops in the reverse one.
            f"priority={order * 10}",
            "autostart=false",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_literal(str(supervision.process_log(process.name)))}",
            # Bounded: at most this and one rotated log (NAME.log.1) per process.
            f"stdout_logfile_maxbytes={PROCESS_LOG_MAX_BYTES}",
            "stdout_logfile_backups=1",
        ]
        if process.environment:
            lines.append(f"environment={_environment(process.environment)}")
        sections.append("\n".join(lines) + "\n")
    return "\n".join(sections)


def restart_counts(log_lines: Iterable[str]) -> dict[str, int]:
    """How many times the running supervisord restarted each process, from its log (see the module's
    docstring); a process it never restarted is absent."""
    counts: dict[str, int] = {}
    ended: set[str] = set()  # exited on their own since their last spawn
    for line in log_lines:
        matched = _LOG_LINE.match(line.rstrip("\n"))
        if not matched:
            continue
        message = matched["message"]
        if message.startswith(_DAEMON_STARTED):
            counts.clear()
            ended.clear()
        elif spawned := _SPAWNED.match(message):
            name = spawned["name"]
            if name in ended:
                counts[name] = counts.get(name, 0) + 1
                ended.discard(name)
        elif end := _ENDED.match(message):
            if end["how"] == "exited":
                ended.add(end["name"])
            else:
                ended.discard(end["name"])
    return counts


# --- talking to supervisord -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessState:
    name: str
    state: str  # supervisord's: STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL
    pid: int
    description: str  # supervisord's: "pid 4242, uptime 0:01:02", "Exited too quickly ..."


class Supervisor:
    """supervisord's XML-RPC interface on its socket, the few calls `./run` makes."""

    def __init__(self, supervision: Supervision) -> None:
        # Imported here, not at the top: `./run down` and `status` also run in a virtualenv made before
        # supervisor was a dependency, where no supervisord can be running.
        from supervisor.xmlrpc import SupervisorTransport

        self._transport = SupervisorTransport(None, None, f"unix://{supervision.socket}")
        # The host is a placeholder: the transport connects to the socket.
        server = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=self._transport)
        self._rpc: Any = server.supervisor

    def answers(self) -> bool:
        try:
            self._rpc.getState()
        except OSError:  # no socket, or nobody listening on it
            self._transport.close()  # else it would try to reuse the connection that failed
            return False
        return True

    def states(self) -> dict[str, ProcessState]:
        infos = cast(list[dict[str, Any]], self._rpc.getAllProcessInfo())
        return {
            info["name"]: ProcessState(info["name"], info["statename"], info["pid"], info["description"])
            for info in infos
        }

    def state(self, name: str) -> ProcessState:
        info = cast(dict[str, Any], self._rpc.getProcessInfo(name))
        return ProcessState(info["name"], info["statename"], info["pid"], info["description"])

    def take_up_config(self) -> None:
        """What `supervisorctl update` does: drop the processes the file no longer has, and those it
        has changed (they are started anew with their new settings), and add the new ones."""
        added, changed, removed = cast(list[list[list[str]]], self._rpc.reloadConfig())[0]
        for name in [*removed, *changed]:
            self._rpc.stopProcessGroup(name, True)
            self._rpc.removeProcessGroup(name)
        for name in [*added, *changed]:
            self._rpc.addProcessGroup(name)

    def start(self, name: str) -> None:
        """Spawn it and return at once: `up` waits for its health URL instead of `startsecs`."""
        self._rpc.startProcess(name, False)

    def stop(self, name: str) -> None:
        """SIGTERM, SIGKILL after STOP_WAIT_SECONDS; returns once it has ended."""
        self._rpc.stopProcess(name, True)

    def shutdown(self) -> None:
        self._rpc.shutdown()


def say(text: str) -> None:
    print(f"[run] {text}", file=sys.stderr, flush=True)


def fail(text: str, log: Path | None = None) -> SystemExit:
    if log is not None and log.exists():
        sys.stderr.writelines(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
    return SystemExit(f"[run] ERROR: {text}")


def _answers(url: str) -> bool:
    """As `curl -f` judged it: any answer below 400. (The standard library's client: every program's
    `exec` imports this module, and httpx would add half a second to each restart.)"""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _start_daemon(supervision: Supervision, supervisor: Supervisor, supervisord: Path) -> None:
    # supervisord checks its configuration, forks the daemon (setsid, its standard streams on /dev/null)
    # and exits; the daemon answers on its socket a moment later.
    subprocess.run(
        [str(supervisord), "-c", str(supervision.config_file)], stdin=subprocess.DEVNULL, check=True
    )
    deadline = time.monotonic() + DAEMON_WAIT_SECONDS
    while not supervisor.answers():
        if time.monotonic() > deadline:
            raise fail(f"supervisord not answering after {DAEMON_WAIT_SECONDS}s", supervision.log_file)
        time.sleep(0.2)
    say(f"supervisord: started (pid {supervision.pid_file.read_text().strip()})")


def _wait_until_healthy(process: Process, supervision: Supervision, supervisor: Supervisor) -> None:
    log = supervision.process_log(process.name)
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    while not all(_answers(url) for url in process.health_urls):
        # BACKOFF is a failed start supervisord retries: wait on. FATAL: it gave up.
        if supervisor.state(process.name).state in {"FATAL", "STOPPED"}:
            raise fail(f"{process.name} exited", log)
        if time.monotonic() > deadline:
            raise fail(f"{process.name} not healthy after {HEALTH_WAIT_SECONDS}s", log)
        time.sleep(0.5)


def _wait_until_all_run(
    processes: Sequence[Process], supervision: Supervision, supervisor: Supervisor
) -> None:
    """Until each has stayed up START_SECONDS (the workers were not waited for one by one)."""
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    while True:
        states = supervisor.states()
        for process in processes:
            if states[process.name].state in {"FATAL", "STOPPED"}:
                raise fail(f"{process.name} exited", supervision.process_log(process.name))
        waiting = [process.name for process in processes if states[process.name].state != "RUNNING"]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise fail(f"not running after {HEALTH_WAIT_SECONDS}s: {', '.join(waiting)}")
        time.sleep(0.5)


def up(processes: Sequence[Process], supervision: Supervision) -> None:
    supervision.run_dir.mkdir(parents=True, exist_ok=True)
    python = Path(sys.executable)  # the virtualenv's: `./run` runs this module with it
    config = supervisord_config(
        processes,
        supervision,
        python=python,
        user=pwd.getpwuid(os.getuid()).pw_name,
        directory=REPO_ROOT,
    )
    supervision.config_file.write_text(config)
    supervisor = Supervisor(supervision)
    if supervisor.answers():
        supervisor.take_up_config()
    else:
        _start_daemon(supervision, supervisor, python.parent / "supervisord")
    for process in processes:
        current = supervisor.state(process.name)
        running = current.state in RUNNING_STATES
        if not running:
            supervisor.start(process.name)
        if process.health_urls:
            _wait_until_healthy(process, supervision, supervisor)
        if running:
            say(f"{process.name}: already running ({current.description})")
        elif process.health_urls:
            ready_at = ", ".join(url.removesuffix("/health") for url in process.health_urls)
            say(f"{process.name}: ready at {ready_at}")
        else:
            say(f"{process.name}: started (pid {supervisor.state(process.name).pid})")
    _wait_until_all_run(processes, supervision, supervisor)


def down(processes: Sequence[Process], supervision: Supervision) -> None:
    supervisor = Supervisor(supervision)
    if not supervisor.answers():
        return
    states = supervisor.states()
    for process in reversed(processes):
        if process.name in states and states[process.name].state in RUNNING_STATES:
            supervisor.stop(process.name)
            say(f"{process.name}: stopped")
    # It stops whatever else it still runs (a process since dropped from the table) before it exits.
    pid = int(supervision.pid_file.read_text())
    supervisor.shutdown()
    deadline = time.monotonic() + STOP_WAIT_SECONDS * 2
    while _alive(pid):
        if time.monotonic() > deadline:
            raise fail(f"supervisord (pid {pid}) still running {STOP_WAIT_SECONDS * 2}s after its shutdown")
        time.sleep(0.2)
    say("supervisord: stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status_lines(
    processes: Sequence[Process], states: dict[str, ProcessState], restarts: dict[str, int]
) -> list[str]:
    lines = []
    for process in processes:
        current = states.get(process.name)
        if current is None:
            lines.append(f"{process.name}: stopped")
            continue
        # supervisord describes a STARTING process with nothing.
        described = current.description or (f"pid {current.pid}" if current.pid else "")
        description = f" ({described})" if described else ""
        lines.append(
            f"{process.name}: {current.state.lower()}{description}, restarts: {restarts.get(process.name, 0)}"
        )
    return lines


def status(processes: Sequence[Process], supervision: Supervision) -> None:
    supervisor = Supervisor(supervision)
    if not supervisor.answers():
        print("supervisord: stopped")
        print("\n".join(f"{process.name}: stopped" for process in processes))
        return
    print(f"supervisord: running (pid {supervision.pid_file.read_text().strip()})")
    with supervision.log_file.open(errors="replace") as log:
        restarts = restart_counts(log)
    print("\n".join(status_lines(processes, supervisor.states(), restarts)))


# --- what a program runs first -----------------------------------------------------------------------


def orphans(session: int, processes: Iterable[tuple[int, int, int]]) -> list[int]:
    """Of the (pid, process group, session) rows, the processes of `session` whose group leader has
    died. supervisord puts every process it spawns in a group of its own, in its own session, so these
    are what a dead program left (nginx's workers of a killed master). While such a process lives, the
    kernel gives no new process its group's number: a living leader is never an old group's."""
    rows = list(processes)
    living = {pid for pid, _, _ in rows}
    return [pid for pid, group, in_session in rows if in_session == session and group not in living]


def _processes() -> list[tuple[int, int, int]]:
    """(pid, process group, session) of every living process, from /proc; zombies are dead already."""
    rows = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        # `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses.
        state, _, group, session = text[text.rindex(")") + 2 :].split()[:4]
        if state != "Z":
            rows.append((int(text.split(" ", 1)[0]), int(group), int(session)))
    return rows


def execute(args: Sequence[str]) -> NoReturn:
    # SIGTERM when supervisord dies (kept across exec): a program never outlives it to hold its port
    # against the next supervisord's, out of reach of `./run down` and `status`.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    left = orphans(os.getsid(0), _processes())
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while left and time.monotonic() < deadline:
        living = {pid for pid, _, _ in _processes()}
        left = [pid for pid in left if pid in living]
        time.sleep(0.1)
    os.execv(sys.executable, [sys.executable, *args])  # noqa: S606 (the program itself, same pid)


def main() -> None:
    if sys.argv[1:2] == ["exec"]:  # supervisord's command line for every program: `exec ARGS`
        execute(sys.argv[2:])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `./run status | head` ends quietly
    parser = argparse.ArgumentParser(
        prog="python -m infra.supervision", description="./run's process table, on standard input"
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / ".local" / "run")
    args = parser.parse_args()
    processes = parse_table(sys.stdin.read())
    supervision = Supervision(args.run_dir.resolve())
    {"up": up, "down": down, "status": status}[args.command](processes, supervision)


if __name__ == "__main__":
    main()
