"""`python -m gateway SERVICE [SERVICE ...] [--port N | --port-offset K] [--side both|command|query]`

One service on its port (`python -m gateway catalog`, the seed's port unless `--port` names another),
or several in one process, each on its seed's port plus `--port-offset` (`./run up` runs every service
of an instance in one process: `python -m gateway users catalog orders payments --port-offset 10`).
Each service is its own app on its own port, with its own lifespan, event store and pools, exactly as
when it runs alone; they only share the process, its event loop and its memory (one interpreter and one
copy of the libraries instead of four: the platform's RSS is mostly that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from config.logging import configure_logging
from config.process import tune_garbage_collector
from config.settings import ConfigurationError, Settings, get_settings
from config.telemetry import configure_tracing
from gateway.apps import PORTS, service_app


class SharedProcessServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to the process: several servers share one, and a
    SIGTERM must stop all of them (uvicorn's own handler would reach only the last one started)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_ports(services: list[str], port: int | None, offset: int) -> dict[str, int]:
    if port is not None:
        if len(services) != 1:
            raise SystemExit("--port names the port of one service; several take --port-offset")
        return {services[0]: port}
    return {service: PORTS[service] + offset for service in services}


def with_instance_url(settings: Settings, host: str, port: int) -> Settings:
    """Where the other instances reach this service (its partitions' owner): its own port."""
    if settings.instance_url:
        return settings
    return settings.model_copy(update={"instance_url": f"http://{host}:{port}"})


async def serve(apps: dict[int, FastAPI], host: str, access_log: bool) -> None:
    servers = [
        SharedProcessServer(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="info",
                log_config=None,  # uvicorn's loggers go through ours (config/logging.py)
                access_log=access_log,
                # The app resolves X-Forwarded-For itself, trusting COMMERCE_TRUSTED_PROXIES.
                proxy_headers=False,
            )
        )
        for port, app in apps.items()
    ]

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop, stop_all)
    serving = [asyncio.create_task(server.serve()) for server in servers]
    # One server that stops (its lifespan failed, its port is taken) stops the others: the process
    # exits and its supervisor restarts it whole, rather than it serving some services and not others.
    await asyncio.wait(serving, return_when=asyncio.FIRST_COMPLETED)
    stop_all()
    for outcome in await asyncio.gather(*serving, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome
    if not all(server.started for server in servers):
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_argument("services", nargs="+", choices=sorted(PORTS), metavar="SERVICE")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="the port of a single service (default: its seed's)")
    parser.add_argument("--port-offset", type=int, default=0, help="added to each service's seed port")
    parser.add_argument("--side", choices=["both", "command", "query"], default="both")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: /metrics counts them)"
    )
    args = parser.parse_args()
    services = list(dict.fromkeys(args.services))
    tune_garbage_collector()
    ports = listening_ports(services, args.port, args.port_offset)
    settings = get_settings()
    if settings.instance_url and len(services) > 1:
        raise SystemExit("COMMERCE_INSTANCE_URL names one service's address; run one service per process")
    process_name = "+".join(services) if args.side == "both" else f"{'+'.join(services)}-{args.side}"
    configure_logging(process_name, settings.log_format)
    configure_tracing(process_name, settings)
    try:
        apps = {
            port: service_app(service, with_instance_url(settings, args.host, port), args.side)
            for service, port in ports.items()
        }
    except ConfigurationError as refused:
        # One line that names the setting, and a non-zero status: the process manager sees it at once.
        raise SystemExit(f"{process_name}: {refused}") from None
    # asyncio's own loop, not uvloop (which `uvicorn.run` picked before one process served several
    # apps): on the platform rows, uvloop made the services slower, not faster (POST /products 921
    # against 1,104 and 1,117/s, GET /products/{id} 3,029 against 3,253 and 3,719/s).
    asyncio.run(serve(apps, args.host, args.access_log))


if __name__ == "__main__":
    main()
