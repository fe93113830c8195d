"""supervisord's configuration as `python -m infra.supervision` writes it from `./run`'s process table,
read back by supervisord's own parser; the restarts `./run status` counts from supervisord's log; and
what a program's start sweeps away."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from infra.supervision import (
    PROCESS_LOG_MAX_BYTES,
    START_RETRIES,
    START_SECONDS,
    STOP_WAIT_SECONDS,
    Process,
    ProcessState,
    Supervision,
    orphans,
    parse_table,
    restart_counts,
    status_lines,
    supervisord_config,
)
from tests.support.servers import REPO

# What `./run`'s platform_processes prints, shortened: an instance of two services, a worker, the edge.
TABLE = """\
services||-m gateway users catalog --port-offset 0|http://127.0.0.1:6000/health http://127.0.0.1:8000/health
users-projector|COMMERCE_PROJECTOR_METRICS_PORT=9101|-m projectors run users|
edge||-m infra.edge serve --port 8080 --upstream users=127.0.0.1:6000,127.0.0.1:6010|http://127.0.0.1:8080/health
"""
PYTHON = Path("/opt/commerce/.venv/bin/python")


def read_back(processes: list[Process], tmp_path: Path) -> Any:
    """The configuration as supervisord itself parses it (it fails on what it could not read)."""
    supervision = Supervision(tmp_path / "run")
    config = supervisord_config(processes, supervision, python=PYTHON, user="root", directory=tmp_path)
    supervision.config_file.parent.mkdir()
    supervision.config_file.write_text(config)
    options = ServerOptions()
    options.configfile = str(supervision.config_file)
    options.process_config(do_usage=False)
    return options


def programs(options: Any) -> dict[str, Any]:
    return {group.name: group for group in options.process_group_configs}


def test_the_table_gives_each_process_its_arguments_environment_and_health_urls_in_start_order() -> None:
    services, worker, edge = parse_table(TABLE)
    assert services == Process(
        "services",
        ("-m", "gateway", "users", "catalog", "--port-offset", "0"),
        {},
        ("http://127.0.0.1:6000/health", "http://127.0.0.1:8000/health"),
    )
    assert worker.environment == {"COMMERCE_PROJECTOR_METRICS_PORT": "9101"}
    assert worker.args == ("-m", "projectors", "run", "users")
    assert worker.health_urls == ()
    assert edge.name == "edge"
    assert edge.health_urls == ("http://127.0.0.1:8080/health",)


def test_a_table_with_two_processes_of_one_name_is_refused() -> None:
    with pytest.raises(ValueError, match="one name"):
        parse_table(TABLE + TABLE.splitlines()[0])


def test_every_process_is_a_program_supervisord_starts_only_when_asked_in_the_tables_order(
    tmp_path: Path,
) -> None:
    groups = programs(read_back(parse_table(TABLE), tmp_path))
    assert list(groups) == ["services", "users-projector", "edge"]
    priorities = [group.priority for group in groups.values()]
    assert priorities == sorted(priorities)
    assert len(set(priorities)) == 3
    assert not any(group.process_configs[0].autostart for group in groups.values())


def test_a_program_is_restarted_whenever_it_ends_and_stopped_by_sigterm_then_sigkill_to_its_group(
    tmp_path: Path,
) -> None:
    for group in programs(read_back(parse_table(TABLE), tmp_path)).values():
        program = group.process_configs[0]
        assert program.autorestart is RestartUnconditionally
        assert program.startsecs == START_SECONDS
        assert program.startretries == START_RETRIES
        assert program.stopsignal == signal.SIGTERM
        assert program.stopwaitsecs == STOP_WAIT_SECONDS
        assert program.stopasgroup
        assert program.killasgroup


def test_a_program_runs_its_arguments_after_the_sweep_with_its_environment_and_its_log_in_the_run_directory(
    tmp_path: Path,
) -> None:
    groups = programs(read_back(parse_table(TABLE), tmp_path))
    worker = groups["users-projector"].process_configs[0]
    assert worker.command == f"{PYTHON} -m infra.supervision exec -m projectors run users"
    assert worker.environment == {"COMMERCE_PROJECTOR_METRICS_PORT": "9101"}
    assert worker.directory == str(tmp_path)
    assert worker.stdout_logfile == str(tmp_path / "run" / "users-projector.log")
    assert worker.redirect_stderr
    assert (worker.stdout_logfile_maxbytes, worker.stdout_logfile_backups) == (PROCESS_LOG_MAX_BYTES, 1)
    assert groups["services"].process_configs[0].environment == {}


def test_supervisord_keeps_its_whole_log_its_pid_file_and_its_socket_in_the_run_directory(
    tmp_path: Path,
) -> None:
    options = read_back(parse_table(TABLE), tmp_path)
    run_dir = tmp_path / "run"
    assert options.logfile == str(run_dir / "supervisord.log")
    assert options.logfile_maxbytes == 0
    assert options.pidfile == str(run_dir / "supervisord.pid")
    servers = options.configroot.supervisord.server_configs
    assert [server["file"] for server in servers] == [str(run_dir / "supervisor.sock")]
    assert options.nodaemon is False


def test_percent_signs_reach_the_program_as_written(tmp_path: Path) -> None:
    process = Process("catalog", ("-c", "print('100%(x)s')"), {"COMMERCE_NOTE": "50%"})
    program = programs(read_back([process], tmp_path))["catalog"].process_configs[0]
    assert shlex.split(program.command)[-2:] == ["-c", "print('100%(x)s')"]
    assert program.environment == {"COMMERCE_NOTE": "50%"}


def test_an_environment_value_supervisord_could_not_carry_is_refused(tmp_path: Path) -> None:
    process = Process("catalog", ("-m", "gateway"), {"COMMERCE_NOTE": 'say "hi"'})
    with pytest.raises(ValueError, match="COMMERCE_NOTE"):
        supervisord_config([process], Supervision(tmp_path), python=PYTHON, user="root", directory=tmp_path)


# supervisord's own lines, as it wrote them in a run of `./run up` (kill -9 of catalog and the saga).
STARTED = [
    "2026-12-07 15:32:14,705 INFO daemonizing the supervisord process",
    "2026-12-07 15:32:14,706 INFO supervisord started with pid 13432",
    "2026-12-07 15:32:24,718 INFO spawned: 'catalog' with pid 13937",
    "2026-12-07 15:32:29,781 INFO success: catalog entered RUNNING state, process has stayed up for > than 5 seconds (startsecs)",
    "2026-12-07 15:33:09,644 INFO spawned: 'order-saga' with pid 14821",
]
KILLED = [
    "2026-12-07 15:33:55,594 WARN exited: order-saga (terminated by SIGKILL; not expected)",
    "2026-12-07 15:33:55,613 INFO spawned: 'order-saga' with pid 15703",
    "2026-12-07 15:33:55,614 WARN exited: catalog (terminated by SIGKILL; not expected)",
    "2026-12-07 15:33:56,644 INFO spawned: 'catalog' with pid 15736",
    "2026-12-07 15:34:00,648 INFO success: order-saga entered RUNNING state, process has stayed up for > than 5 seconds (startsecs)",
]


def test_no_process_was_restarted_before_any_ended() -> None:
    assert restart_counts(STARTED) == {}


def test_a_process_killed_and_spawned_again_was_restarted_once() -> None:
    assert restart_counts(STARTED + KILLED) == {"order-saga": 1, "catalog": 1}


def test_a_process_that_exits_with_status_zero_is_restarted_too() -> None:
    lines = [
        "2026-12-07 15:40:00,000 INFO exited: catalog (exit status 0; expected)",
        "2026-12-07 15:40:00,010 INFO spawned: 'catalog' with pid 16000",
    ]
    assert restart_counts(STARTED + lines) == {"catalog": 1}


def test_a_stop_and_a_start_asked_for_are_no_restart() -> None:
    lines = [
        "2026-12-07 15:36:39,656 INFO waiting for catalog to stop",
        "2026-12-07 15:36:39,966 WARN stopped: catalog (terminated by SIGTERM)",
        "2026-12-07 15:37:00,000 INFO spawned: 'catalog' with pid 17000",
    ]
    assert restart_counts(STARTED + lines) == {}


def test_each_failed_start_retried_is_a_restart_and_the_start_asked_for_after_giving_up_is_not() -> None:
    lines = [
        "2026-12-07 15:34:15,779 WARN exited: edge (terminated by SIGKILL; not expected)",
        "2026-12-07 15:34:15,786 INFO spawned: 'edge' with pid 16365",
        "2026-12-07 15:34:19,410 WARN exited: edge (exit status 1; not expected)",
        "2026-12-07 15:34:20,415 INFO spawned: 'edge' with pid 16428",
        "2026-12-07 15:34:24,324 WARN exited: edge (exit status 1; not expected)",
        "2026-12-07 15:35:51,570 INFO gave up: edge entered FATAL state, too many start retries too quickly",
        "2026-12-07 15:38:00,000 INFO spawned: 'edge' with pid 21020",
    ]
    assert restart_counts(STARTED + lines) == {"edge": 2}


def test_only_the_restarts_by_the_supervisord_that_runs_now_count() -> None:
    earlier = [line.replace("13432", "999") for line in STARTED + KILLED]
    assert restart_counts(earlier + STARTED + KILLED[:2]) == {"order-saga": 1}


def test_status_shows_each_processs_state_and_restarts_and_those_supervisord_does_not_run_as_stopped() -> (
    None
):
    processes = parse_table(TABLE)
    states = {
        "services": ProcessState("services", "RUNNING", 4242, "pid 4242, uptime 0:01:02"),
        "users-projector": ProcessState("users-projector", "STARTING", 4343, ""),
    }
    assert status_lines(processes, states, {"services": 2}) == [
        "services: running (pid 4242, uptime 0:01:02), restarts: 2",
        "users-projector: starting (pid 4343), restarts: 0",
        "edge: stopped",
    ]


def test_the_sweep_takes_what_a_dead_leader_left_in_the_session_and_nothing_else() -> None:
    session = 100  # supervisord's
    rows = [
        (100, 100, 100),  # supervisord
        (210, 210, 100),  # a running program
        (211, 210, 100),  # its child
        (321, 320, 100),  # nginx's workers, their master (320) killed
        (322, 320, 100),
        (500, 400, 7),  # another session's process whose leader has gone: not supervisord's
    ]
    assert orphans(session, rows) == [321, 322]


def test_every_long_running_service_of_docker_compose_is_restarted_when_it_dies() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    once = {"topics"}  # creates the topics and the keys, then exits
    assert {name: services[name].get("restart") for name in once} == {"topics": "on-failure"}
    assert {name: service.get("restart") for name, service in services.items() if name not in once} == {
        name: "unless-stopped" for name in services if name not in once
    }
