"""Spans as JSON lines in a file, for a deployment without a collector: every process may append to one
file (each export is one `write` to a file opened with O_APPEND, so lines of processes never mix), and
`python -m config.trace_view` draws a trace from it. The file is bounded: once it holds `max_bytes`,
the process about to write renames it to `<file>.1` (the one before is dropped) under an exclusive
lock, so several processes rotate it once; a process that opened it just before writes its last
spans into `<file>.1`, and nothing is lost but the oldest half."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """One span as the file keeps it: ids in hex, times in nanoseconds since the epoch."""
    context = span.get_span_context()
    assert context is not None
    return {
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
        "parent_span_id": format_span_id(span.parent.span_id) if span.parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "events": [
            {"name": event.name, "time_ns": event.timestamp, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
        "links": [
            {
                "trace_id": format_trace_id(link.context.trace_id),
                "span_id": format_span_id(link.context.span_id),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ],
    }


# What `./run up`'s spans take at most: this file and the one rotated before it.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span to `path` (created with its directory if missing)."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = b"".join(orjson.dumps(span_line(span), default=str) + b"\n" for span in spans)
        try:
            with self._lock:
                descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                if os.fstat(descriptor).st_size >= self._max_bytes:
                    descriptor = self._rotate(descriptor)
                try:
                    written = os.write(descriptor, data)
                    while written < len(data):  # a short write (a full disk, a signal): finish it
                        written += os.write(descriptor, data[written:])
                finally:
                    os.close(descriptor)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _rotate(self, descriptor: int) -> int:
        """The full file becomes `<file>.1`, once, whichever process gets here first; returns a
        descriptor of the new file."""
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                current = os.stat(self._path)
                mine = os.fstat(descriptor)
                if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):  # nobody rotated it yet
                    os.replace(self._path, rotated(self._path))
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        except FileNotFoundError:  # rotated between our open and our look: the new file is there
            pass
        os.close(descriptor)
        return os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def shutdown(self) -> None:
        """Nothing is held open between exports."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def read_spans(path: Path) -> Iterator[dict[str, Any]]:
    """Every span in the file and the one rotated before it; a line cut short (a process killed
    mid-write) is skipped."""
    for part in (rotated(path), path):
        if not part.exists():
            continue
        with part.open("rb") as lines:
            for line in lines:
                try:
                    span = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(span, dict):
                    yield span
