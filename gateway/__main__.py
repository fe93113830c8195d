"""`python -m gateway users|catalog [--port N] [--side both|command|query]` (ports default to the seed's)."""

from __future__ import annotations

import argparse

import uvicorn

from config.logging import configure_logging
from config.process import tune_garbage_collector
from config.settings import ConfigurationError, get_settings
from config.telemetry import configure_tracing
from gateway.apps import PORTS, service_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_argument("service", choices=sorted(PORTS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--side", choices=["both", "command", "query"], default="both")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: /metrics counts them)"
    )
    args = parser.parse_args()
    tune_garbage_collector()
    port = args.port or PORTS[args.service]
    settings = get_settings()
    if not settings.instance_url:
        settings = settings.model_copy(update={"instance_url": f"http://{args.host}:{port}"})
    process_name = args.service if args.side == "both" else f"{args.service}-{args.side}"
    configure_logging(process_name, settings.log_format)
    configure_tracing(process_name, settings)
    try:
        app = service_app(args.service, settings, args.side)
    except ConfigurationError as refused:
        # One line that names the setting, and a non-zero status: the process manager sees it at once.
        raise SystemExit(f"{process_name}: {refused}") from None
    uvicorn.run(
        app,
        host=args.host,
        port=port,
        log_level="info",
        log_config=None,  # uvicorn's loggers go through ours (config/logging.py)
        access_log=args.access_log,
        proxy_headers=False,  # the app resolves X-Forwarded-For itself, trusting COMMERCE_TRUSTED_PROXIES
    )


if __name__ == "__main__":
    main()
