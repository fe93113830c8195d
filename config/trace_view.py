"""A look at one trace from a traces file, without a tracing server: an indented waterfall in the
terminal, or a self-contained HTML page.

    python -m config.trace_view list [--file F] [--limit N]      the latest traces, newest first
    python -m config.trace_view show TRACE_ID [--file F] [--html OUT.html]

F defaults to COMMERCE_TRACES_FILE. A span of another trace linked to one of this trace's spans (a
projector's batch that held many traces) is drawn under the span it links to, marked as linked.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import get_settings
from config.span_file import read_spans

BAR_WIDTH = 40
# One colour per service, in the order services first appear in the trace.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


@dataclass
class Row:
    """A span placed in the waterfall: its depth, and whether it is only linked to the trace."""

    span: dict[str, Any]
    depth: int
    linked: bool = False
    children: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Trace:
    trace_id: str
    rows: list[Row]
    start_ns: int
    end_ns: int

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(str(row.span.get("service")) for row in self.rows))


def load_trace(spans: Iterable[dict[str, Any]], trace_id: str) -> Trace:
    """The trace's spans as a tree in start order (spans whose parent is missing start a branch of
    their own), with linked spans of other traces under the spans they link to."""
    own: list[dict[str, Any]] = []
    linked: list[dict[str, Any]] = []
    for span in spans:
        if span.get("trace_id") == trace_id:
            own.append(span)
        elif any(link.get("trace_id") == trace_id for link in span.get("links", ())):
            linked.append(span)
    if not own:
        raise LookupError(f"no span of trace {trace_id} in the file")
    by_id = {span["span_id"]: Row(span, 0) for span in own}
    roots: list[Row] = []
    for row in by_id.values():
        parent = by_id.get(row.span.get("parent_span_id") or "")
        (parent.children if parent is not None else roots).append(row)
    for span in linked:
        target = next(
            (by_id[link["span_id"]] for link in span["links"] if link.get("span_id") in by_id), None
        )
        row = Row(span, 0, linked=True)
        (target.children if target is not None else roots).append(row)
    ordered: list[Row] = []

    def place(row: Row, depth: int) -> None:
        row.depth = depth
        ordered.append(row)
        for child in sorted(row.children, key=lambda child: child.span["start_ns"]):
            place(child, depth + 1)

    for root in sorted(roots, key=lambda row: row.span["start_ns"]):
        place(root, 0)
    start = min(row.span["start_ns"] for row in ordered)
    end = max(row.span["end_ns"] for row in ordered)
    return Trace(trace_id, ordered, start, end)


def _milliseconds(nanoseconds: int) -> float:
    return nanoseconds / 1_000_000


def _summary(span: dict[str, Any]) -> str:
    """The few attributes that say what a span did."""
    attributes = span.get("attributes", {})
    parts = []
    for key, label in (
        ("http.response.status_code", "status"),
        ("messaging.destination.partition.id", "partition"),
        ("messaging.kafka.offset", "offset"),
        ("messaging.batch.message_count", "records"),
        ("commerce.refused", "refused"),
    ):
        if key in attributes:
            parts.append(f"{label}={attributes[key]}")
    if span.get("status", {}).get("code") == "ERROR":
        parts.append(f"ERROR {span['status'].get('description') or ''}".rstrip())
    return " ".join(parts)


def waterfall(trace: Trace) -> str:
    total = max(trace.end_ns - trace.start_ns, 1)
    name_width = max(
        len("  " * row.depth + row.span["name"]) + (9 if row.linked else 0) for row in trace.rows
    )
    service_width = max(len(service) for service in trace.services)
    lines = [
        f"trace {trace.trace_id}: {len(trace.rows)} spans, {len(trace.services)} services, "
        f"{_milliseconds(total):.1f} ms, from {_clock(trace.start_ns)}"
    ]
    for row in trace.rows:
        span = row.span
        offset, duration = span["start_ns"] - trace.start_ns, span["end_ns"] - span["start_ns"]
        first = min(int(offset / total * BAR_WIDTH), BAR_WIDTH - 1)
        length = max(1, round(duration / total * BAR_WIDTH))
        bar = " " * first + "█" * min(length, BAR_WIDTH - first)
        name = "  " * row.depth + span["name"] + (" (linked)" if row.linked else "")
        lines.append(
            f"{_milliseconds(offset):8.1f} {_milliseconds(duration):8.1f} ms  |{bar:<{BAR_WIDTH}}|  "
            f"{span.get('service')!s:<{service_width}}  {name:<{name_width}}  {_summary(span)}".rstrip()
        )
    return "\n".join(lines)


def _clock(nanoseconds: int) -> str:
    return datetime.fromtimestamp(nanoseconds / 1e9, UTC).isoformat(timespec="milliseconds")


def html_page(trace: Trace) -> str:
    """One page, no scripts or files beside it: a row per span, its bar on a shared time axis, its
    attributes unfolded on a click."""
    total = max(trace.end_ns - trace.start_ns, 1)
    colours = {service: PALETTE[i % len(PALETTE)] for i, service in enumerate(trace.services)}
    ticks = "".join(
        f'<span class="tick" style="left:{fraction * 100:.2f}%">{_milliseconds(total) * fraction:.1f} ms</span>'
        for fraction in (0, 0.25, 0.5, 0.75, 1)
    )
    legend = "".join(
        f'<span class="service"><i style="background:{colour}"></i>{html.escape(service)}</span>'
        for service, colour in colours.items()
    )
    rows = []
    for row in trace.rows:
        span = row.span
        offset, duration = span["start_ns"] - trace.start_ns, span["end_ns"] - span["start_ns"]
        left, width = offset / total * 100, max(duration / total * 100, 0.3)
        service = str(span.get("service"))
        error = span.get("status", {}).get("code") == "ERROR"
        marks = "".join(
            f'<i class="mark" title="{html.escape(event["name"])}" '
            f'style="left:{(event["time_ns"] - trace.start_ns) / total * 100:.2f}%"></i>'
            for event in span.get("events", ())
        )
        details = html.escape(
            "\n".join(f"{key} = {value}" for key, value in sorted(span.get("attributes", {}).items()))
        )
        label = html.escape(span["name"]) + (" <em>linked</em>" if row.linked else "")
        rows.append(
            f'<details class="row{" error" if error else ""}"><summary>'
            f'<span class="name" style="padding-left:{row.depth * 16 + 4}px">{label}</span>'
            f'<span class="svc">{html.escape(service)}</span>'
            f'<span class="lane"><span class="bar" style="left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colours[service]}"></span>{marks}'
            f'<span class="ms" style="{_label_place(left, width)}">{_milliseconds(duration):.1f} ms</span>'
            f"</span></summary><pre>{details}\n{html.escape(_summary(span))}</pre></details>"
        )
    return _PAGE.format(
        trace_id=trace.trace_id,
        spans=len(trace.rows),
        services=len(trace.services),
        total=f"{_milliseconds(total):.1f}",
        started=_clock(trace.start_ns),
        legend=legend,
        ticks=ticks,
        rows="\n".join(rows),
    )


def _label_place(left: float, width: float) -> str:
    """A bar's duration to its right, or to its left where the page ends."""
    if left + width > 85:
        return f"right:{100 - left:.2f}%;margin-right:6px"
    return f"left:{left + width:.2f}%;margin-left:6px"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trace {trace_id}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 20px; color: #222; }}
h1 {{ font-size: 16px; margin: 0 0 4px; }} .meta {{ color: #666; margin-bottom: 10px; }}
.service {{ margin-right: 14px; }} .service i {{ display: inline-block; width: 10px; height: 10px;
  margin-right: 4px; border-radius: 2px; }}
.axis, summary {{ display: grid; grid-template-columns: 340px 290px 1fr; align-items: center; }}
.axis {{ margin-top: 12px; border-bottom: 1px solid #ccc; height: 20px; }}
.axis .lane {{ position: relative; height: 100%; }}
.tick {{ position: absolute; transform: translateX(-50%); color: #666; font-size: 11px; white-space: nowrap; }}
.tick:first-child {{ transform: none; }} .tick:last-child {{ transform: translateX(-100%); }}
details {{ border-bottom: 1px solid #eee; }} summary {{ list-style: none; cursor: pointer; height: 24px; }}
summary::-webkit-details-marker {{ display: none; }} summary:hover {{ background: #f5f7fa; }}
.name {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.svc {{ color: #555; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.lane {{ position: relative; height: 24px; }}
.bar {{ position: absolute; top: 6px; height: 12px; border-radius: 2px; }}
.mark {{ position: absolute; top: 3px; width: 2px; height: 18px; background: #222; opacity: .55; }}
.ms {{ position: absolute; top: 5px; font-size: 11px; color: #444; white-space: nowrap; }}
.error .name {{ color: #c0392b; font-weight: 600; }} em {{ color: #888; font-size: 11px; }}
pre {{ margin: 4px 0 8px 24px; font-size: 12px; color: #333; white-space: pre-wrap; }}
</style></head><body>
<h1>trace {trace_id}</h1>
<div class="meta">{spans} spans across {services} services, {total} ms, from {started} UTC</div>
<div>{legend}</div>
<div class="axis"><span>span</span><span>service</span><span class="lane">{ticks}</span></div>
{rows}
</body></html>
"""


def latest_traces(spans: Iterable[dict[str, Any]], limit: int) -> list[str]:
    """One line per trace, newest first: start, duration, spans, services and its first span's name."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    lines = []
    newest = sorted(by_trace.items(), key=lambda item: -min(s["start_ns"] for s in item[1]))[:limit]
    for trace_id, members in newest:
        first = min(members, key=lambda span: span["start_ns"])
        duration = max(s["end_ns"] for s in members) - first["start_ns"]
        services = ",".join(dict.fromkeys(str(s.get("service")) for s in members))
        lines.append(
            f"{trace_id}  {_clock(first['start_ns'])}  {_milliseconds(duration):8.1f} ms  "
            f"{len(members):3} spans  {first['name']}  [{services}]"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m config.trace_view", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the latest traces, newest first")
    listing.add_argument("--limit", type=int, default=20)
    showing = commands.add_parser("show", help="one trace as a waterfall")
    showing.add_argument("trace_id")
    showing.add_argument("--html", type=Path, help="write a self-contained HTML page there too")
    for command in (listing, showing):
        command.add_argument("--file", type=Path, help="a traces file (default: COMMERCE_TRACES_FILE)")
    args = parser.parse_args()
    path: Path | None = args.file or get_settings().traces_file
    if path is None:
        raise SystemExit("no traces file: pass --file or set COMMERCE_TRACES_FILE")
    if args.command == "list":
        print("\n".join(latest_traces(read_spans(path), args.limit)))
        return
    try:
        trace = load_trace(read_spans(path), args.trace_id.lower())
    except LookupError as missing:
        raise SystemExit(str(missing)) from None
    print(waterfall(trace))
    if args.html is not None:
        args.html.write_text(html_page(trace))
        print(f"wrote {args.html}", file=sys.stderr)


if __name__ == "__main__":
    main()
