"""Logs of every process: one JSON object per line, with the service, and the trace, span and correlation
ids of what was being done, so a log line leads to its trace and to the other lines of one user action.
Messages are the code's own; request bodies and secrets are never logged."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Literal

import orjson
from opentelemetry import trace
from opentelemetry.trace import format_span_id, format_trace_id

from config.telemetry import CORRELATION_ID


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format_trace_id(context.trace_id)
            line["span_id"] = format_span_id(context.span_id)
        correlation_id = CORRELATION_ID.get()
        if correlation_id is not None:
            line["correlation_id"] = correlation_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """For a human at a terminal: the classic line, and the trace id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = trace.get_current_span().get_span_context()
        return f"{text} [trace {format_trace_id(context.trace_id)}]" if context.is_valid else text


def configure_logging(
    service: str, log_format: Literal["json", "text"] = "json", quiet: tuple[str, ...] = ()
) -> None:
    """The process's one handler (stderr), on the root logger: uvicorn's loggers reach it too when
    uvicorn is run with `log_config=None`. The `quiet` loggers (chatty libraries) log warnings only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
