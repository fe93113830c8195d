"""Prometheus' configuration as `python -m infra.monitoring` renders it, the recording rules, and the
dashboard and console page that read them."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import yaml

from infra.monitoring import (
    COMPOSE_CONFIG,
    CONSOLES,
    RULES,
    Monitoring,
    compose_config,
    prometheus_command,
    prometheus_config,
    write_config,
)
from tests.support.servers import REPO, unavailable

DASHBOARD = REPO / "infra" / "grafana" / "dashboards" / "commerce.json"
DATASOURCE = REPO / "infra" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

TARGETS = {
    "users": ["127.0.0.1:6000", "127.0.0.1:6010"],
    "catalog-projectors": ["127.0.0.1:9102"],
}


def monitoring(work_dir: Path, token: str = "") -> Monitoring:
    return Monitoring(9090, TARGETS, work_dir, metrics_token=token)


def jobs(config: str) -> dict[str, dict[str, object]]:
    return {job["job_name"]: job for job in yaml.safe_load(config)["scrape_configs"]}


def recorded_series() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {rule["record"] for group in rules["groups"] for rule in group["rules"]}


def test_every_instance_of_every_job_is_a_target_scraped_every_five_seconds(tmp_path: Path) -> None:
    config = prometheus_config(monitoring(tmp_path))
    scraped = jobs(config)
    assert list(scraped) == ["prometheus", "users", "catalog-projectors"]
    assert scraped["users"]["static_configs"] == [{"targets": ["127.0.0.1:6000", "127.0.0.1:6010"]}]
    assert scraped["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]
    assert yaml.safe_load(config)["global"]["scrape_interval"] == "5s"
    assert yaml.safe_load(config)["rule_files"] == [str(RULES)]
    assert all("authorization" not in job for job in scraped.values())


def test_with_a_metrics_token_every_platform_target_is_sent_it_from_a_private_file(tmp_path: Path) -> None:
    watched = monitoring(tmp_path, token="s3cret-token")
    write_config(watched)
    config = watched.config_file.read_text()
    assert "s3cret-token" not in config
    scraped = jobs(config)
    for name in TARGETS:
        assert scraped[name]["authorization"] == {
            "type": "Bearer",
            "credentials_file": str(watched.token_file),
        }
    assert "authorization" not in scraped["prometheus"]
    assert watched.token_file.read_text() == "s3cret-token"
    assert stat.S_IMODE(watched.token_file.stat().st_mode) == 0o600


def test_without_a_token_no_token_file_is_left_behind(tmp_path: Path) -> None:
    write_config(monitoring(tmp_path, token="old"))
    write_config(monitoring(tmp_path))
    assert not monitoring(tmp_path).token_file.exists()


def test_prometheus_runs_in_the_foreground_with_its_data_and_consoles_where_the_platform_keeps_them(
    tmp_path: Path,
) -> None:
    command = prometheus_command(monitoring(tmp_path))
    assert f"--storage.tsdb.path={tmp_path / 'data'}" in command
    assert "--web.listen-address=127.0.0.1:9090" in command
    assert f"--web.console.templates={CONSOLES}" in command
    assert "--storage.tsdb.retention.time=2d" in command


def test_the_compose_configuration_is_what_the_module_renders_for_the_compose_network() -> None:
    assert COMPOSE_CONFIG.read_text() == compose_config(), (
        "regenerate it: python -m infra.monitoring compose-config > infra/prometheus/prometheus.docker.yml"
    )
    scraped = jobs(compose_config())
    assert scraped["orders"]["dns_sd_configs"] == [{"names": ["orders"], "type": "A", "port": 9000}]
    assert scraped["order-saga"]["dns_sd_configs"] == [{"names": ["order-saga"], "type": "A", "port": 9100}]


def test_recording_rules_are_named_level_metric_operations_and_each_has_an_expression() -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]
            assert rule["expr"].strip()
    assert {
        "service:http_requests:rate1m",
        "service_route:http_request_duration_seconds:quantile_rate1m",
        "service:http_server_errors:ratio_rate1m",
        "event_type:order_events:per_minute",
        "event_type:payment_events:per_minute",
        "projection:projector_lag_records:max",
        "projection:projector_dead_letters:increase1h",
        "step_outcome:saga_steps:per_minute",
    } <= recorded_series()


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool (infra/stack.sh tools prometheus)")
        return
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def series_named_in(expression: str) -> set[str]:
    return set(re.findall(r"\b[a-z_]+:[a-z_]+:[a-z0-9_]+\b", expression))


def test_every_dashboard_panel_reads_a_recorded_series_from_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource_uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource_uid
        for target in panel["targets"]:
            named = series_named_in(target["expr"])
            assert named and named <= recorded_series(), (panel["title"], named - recorded_series())


def test_the_console_page_reads_only_recorded_series() -> None:
    page = (CONSOLES / "commerce.html").read_text()
    named = series_named_in(page)
    assert len(named) >= 10
    assert named <= recorded_series(), named - recorded_series()
