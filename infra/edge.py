"""The edge: nginx on one port in front of every instance of every service. It routes the seed's paths,
spreads requests over a service's instances, limits request size and time, passes the client's address
on, serves the storefront and the admin page, and answers in the services' JSON error shape when it
refuses a request itself.

`python -m infra.edge serve --port 8080 --upstream users=127.0.0.1:6000,127.0.0.1:6010 ...` writes the
configuration and runs nginx in the foreground as its child (so `./run` and the tests own its process,
and nginx dies with it), renaming the access log to `access.log.1` when it is full. Its
`--environment` is COMMERCE_ENVIRONMENT's unless given.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from config.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
STOREFRONT = REPO_ROOT / "storefront"
SEED_PORTS = {"users": 6000, "catalog": 8000, "orders": 9000, "payments": 6002}

# The seed's path prefixes of each service, as its clients already call them. `/internal/` (service to
# service) and `/metrics` (Prometheus scrapes each instance) are never served at the edge.
SERVICE_PATHS: dict[str, tuple[str, ...]] = {
    "users": ("/auth/", "/users/"),
    "catalog": ("/products",),
    "orders": ("/cart", "/orders", "/order/"),
    "payments": (
        "/create-payment",
        "/verify-payment/",
        "/webhooks/",
        "/refunds",
        "/payments/",
        "/simulated-gateway/",
    ),
}
# Routed by a local deployment's edge only: the simulated gateway's stand-in for Stripe.js lets anyone pay
# with a test card, and a production payments service does not serve it (Settings.chosen_payment_gateway).
LOCAL_ONLY_PATHS = ("/simulated-gateway/",)


@dataclass(frozen=True)
class EdgeLimits:
    # The services' own cap (COMMERCE_MAX_REQUEST_BODY_BYTES), refused here before a service sees a byte.
    max_body: str = "1m"
    # A command answers within the command timeout (5 s) and a query waits at most the consistency
    # wait (5 s): an upstream silent for longer than this is stuck, and the caller gets a 503.
    upstream_read_seconds: int = 15
    upstream_connect_seconds: int = 2
    # Slow clients: a request must arrive, and an answer be taken, within this time.
    client_seconds: int = 10


@dataclass(frozen=True)
class Edge:
    port: int
    upstreams: dict[str, list[str]]  # service -> its instances' host:port
    work_dir: Path
    host: str = "127.0.0.1"
    static_root: Path = STOREFRONT
    limits: EdgeLimits = EdgeLimits()
    environment: Literal["local", "production"] = "local"

    @property
    def config_file(self) -> Path:
        return self.work_dir / "nginx.conf"


def _error(status: int, error: str, message: str) -> str:
    """A body in the shape of web/errors.py's ErrorPublic, for the answers nginx gives itself."""
    return json.dumps({"message": message, "error": error}, separators=(",", ":")).replace("'", "\\'")


_EDGE_ERRORS = {
    # nginx's own refusals, each answered as the services answer theirs.
    "too_large": (413, "payload_too_large", "The request body is over the limit"),
    "unavailable": (503, "service_unavailable", "The service does not answer; retry shortly"),
    "not_found": (404, "not_found", "Not Found"),
}

# As the services' 503s do (web/errors.py RetryLater): a client knows when to come back.
_RETRY_AFTER = " add_header Retry-After 2 always;"

_MIME_TYPES = {
    "text/html": "html",
    "text/css": "css",
    "application/javascript": "js mjs",
    "application/json": "json",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/x-icon": "ico",
}


def nginx_config(edge: Edge) -> str:
    limits = edge.limits
    upstream_blocks = []
    for service, instances in edge.upstreams.items():
        servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=5s;" for address in instances)
        # least_conn: a slow command (a batch waiting on Kafka) does not get more requests queued behind it.
        # The zone shares the balancing and failure counts between nginx's worker processes.
        upstream_blocks.append(
            f"    upstream {service} {{\n        zone {service} 64k;\n        least_conn;\n{servers}\n"
            "        keepalive 32;\n    }"
        )
    proxied = []
    for service, prefixes in SERVICE_PATHS.items():
        if service not in edge.upstreams:
            continue
        for prefix in prefixes:
            if edge.environment != "local" and prefix in LOCAL_ONLY_PATHS:
                proxied.append(f"        location {prefix} {{ return 404; }}")
            else:
                proxied.append(f"        location {prefix} {{ proxy_pass http://{service}; }}")
    errors = "\n".join(
        f"        location @{name} {{ default_type application/json;{_RETRY_AFTER if status == 503 else ''}"
        f" return {status} '{_error(status, code, text)}'; }}"
        for name, (status, code, text) in _EDGE_ERRORS.items()
    )
    types = "\n".join(f"        {mime} {extensions};" for mime, extensions in _MIME_TYPES.items())
    work = edge.work_dir
    return f"""# Written by `python -m infra.edge`; edit infra/edge.py, not this file.
worker_processes auto;
pid {work}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}

http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    server_tokens off;
    # One JSON line per request, with the id that is passed to the service as X-Request-Id.
    log_format json escape=json '{{"time":"$time_iso8601","request_id":"$request_id",'
        '"client":"$remote_addr","method":"$request_method","uri":"$request_uri","status":$status,'
        '"bytes":$body_bytes_sent,"seconds":$request_time,"upstream":"$upstream_addr",'
        '"upstream_seconds":"$upstream_response_time"}}';
    access_log {work}/access.log json buffer=64k flush=1s;
    client_body_temp_path {work}/buffers/client_body;
    proxy_temp_path {work}/buffers/proxy;
    fastcgi_temp_path {work}/buffers/fastcgi;
    uwsgi_temp_path {work}/buffers/uwsgi;
    scgi_temp_path {work}/buffers/scgi;

    client_max_body_size {limits.max_body};
    client_header_timeout {limits.client_seconds}s;
    client_body_timeout {limits.client_seconds}s;
    send_timeout {limits.client_seconds}s;
    keepalive_timeout 30s;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    # The services believe X-Forwarded-For from their trusted proxies (COMMERCE_TRUSTED_PROXIES), so the
    # limits on callers count the client, not the edge.
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Request-Id $request_id;
    proxy_connect_timeout {limits.upstream_connect_seconds}s;
    proxy_send_timeout {limits.client_seconds}s;
    proxy_read_timeout {limits.upstream_read_seconds}s;
    # An instance that refuses the connection is skipped for the next one. nginx never sends a POST or
    # a PATCH twice (no `non_idempotent`): a command whose instance failed mid-way is the caller's to
    # retry, with its Idempotency-Key.
    proxy_next_upstream error;
    proxy_next_upstream_tries 2;

{chr(10).join(upstream_blocks)}

    server {{
        listen {edge.host}:{edge.port};
        root {edge.static_root};
        index index.html;

        error_page 413 @too_large;
        error_page 502 504 =503 @unavailable;

        location = /health {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
        location /internal/ {{ return 404; }}
        location = /metrics {{ return 404; }}
        error_page 404 @not_found;
{chr(10).join(proxied)}
        # The storefront and the admin page: static files, revalidated on every load (they are small).
        location / {{
            add_header Cache-Control "no-cache";
            try_files $uri $uri/ =404;
        }}
{errors}
    }}
}}
"""


def write_config(edge: Edge) -> Path:
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (edge.work_dir / "buffers" / temp).mkdir(parents=True, exist_ok=True)
    edge.config_file.write_text(nginx_config(edge))
    return edge.config_file


def nginx_command(edge: Edge) -> list[str]:
    """nginx in the foreground (its owner stops it with SIGTERM), run from the edge's own directory."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-p", str(edge.work_dir), "-c", str(edge.config_file), "-g", "daemon off;"]


def _upstream(text: str) -> tuple[str, list[str]]:
    service, _, addresses = text.partition("=")
    if service not in SERVICE_PATHS or not addresses:
        raise argparse.ArgumentTypeError(f"expected SERVICE=HOST:PORT[,HOST:PORT...], got {text!r}")
    return service, addresses.split(",")


# The edge of docker-compose.yml: the services by their compose names (`docker compose up --scale
# catalog=2` adds addresses to a name, which nginx resolves at start), the storefront mounted read-only.
DOCKER_EDGE = Edge(
    port=8080,
    upstreams={service: [f"{service}:{port}"] for service, port in SEED_PORTS.items()},
    work_dir=Path("/var/cache/nginx/edge"),
    host="0.0.0.0",
    static_root=Path("/srv/storefront"),
)
DOCKER_CONFIG = REPO_ROOT / "infra" / "edge" / "nginx.docker.conf"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.edge")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="write the configuration and run nginx in the foreground")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--work-dir", type=Path, default=Path(".local/edge"))
    serve.add_argument("--upstream", type=_upstream, action="append", required=True)
    serve.add_argument("--environment", choices=["local", "production"], help="default: COMMERCE_ENVIRONMENT")
    commands.add_parser("docker-config", help=f"write {DOCKER_CONFIG.relative_to(REPO_ROOT)}")
    args = parser.parse_args()
    if args.command == "docker-config":
        DOCKER_CONFIG.parent.mkdir(exist_ok=True)
        DOCKER_CONFIG.write_text(nginx_config(DOCKER_EDGE))
        return
    environment = args.environment or get_settings().environment
    edge = Edge(
        args.port, dict(args.upstream), args.work_dir.resolve(), host=args.host, environment=environment
    )
    write_config(edge)
    sys.exit(run_nginx(edge))


# The access log is renamed to access.log.1 at this size (the one before is dropped): at most twice it.
ACCESS_LOG_MAX_BYTES = 64 * 1024 * 1024


def run_nginx(edge: Edge, check_every: float = 5.0, max_bytes: int = ACCESS_LOG_MAX_BYTES) -> int:
    """nginx in the foreground, as this process's child (it dies with this process), with its access
    log bounded: nginx cannot rotate its own logs, so this process renames the full one and has nginx
    reopen it (SIGUSR1). Signals to stop are passed on; the exit status is nginx's."""
    command = nginx_command(edge)
    nginx = subprocess.Popen(command, preexec_fn=_die_with_parent)  # no threads yet
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, lambda received, _: nginx.send_signal(received))
    access_log = edge.work_dir / "access.log"
    while True:
        try:
            return nginx.wait(timeout=check_every)
        except subprocess.TimeoutExpired:
            rotate_when_full(access_log, max_bytes, lambda: nginx.send_signal(signal.SIGUSR1))


def rotate_when_full(log: Path, max_bytes: int, reopen: Callable[[], None]) -> bool:
    """Rename a full log to `<log>.1` and have its writer reopen it; True if it did."""
    try:
        if log.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    os.replace(log, log.with_name(log.name + ".1"))
    reopen()
    return True


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


if __name__ == "__main__":
    main()
