"""`python -m bench [--quick] [--json PATH] [--only NAME ...]`: one benchmark, every figure beside its
baseline measured in the same run, printed as one table and written as JSON (by default to
.local/bench/latest.json). It starts what it needs (the local servers, wrk, a deployment of its own,
the baselines' apps) and removes it all at the end, also on failure. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import time
import traceback
from contextlib import AsyncExitStack
from dataclasses import asdict, replace
from pathlib import Path

from bench.harness import FULL, QUICK, Harness
from bench.load import ensure_wrk
from bench.report import format_table, write_json
from bench.scenarios import SCENARIOS
from config.process import tune_garbage_collector
from tests.support.servers import REPO, local_stack

RESULTS = REPO / ".local" / "bench"


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s loads, small data sets")
    parser.add_argument(
        "--json", type=Path, default=RESULTS / "latest.json", help="where to write the table as JSON"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"run only these: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--minutes", type=float, help="how long the soak runs (10 by default; 0.5 with --quick)"
    )
    return parser.parse_args(argv)


async def run(options: argparse.Namespace) -> int:
    size = QUICK if options.quick else FULL
    if options.minutes is not None:
        size = replace(size, soak_minutes=options.minutes)
    chosen = [name for name in SCENARIOS if options.only is None or name in options.only]
    work_dir = RESULTS / "run"  # service logs stay here after the run, for a look at what happened
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    ensure_wrk()
    failed: list[str] = []
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        servers = stack.enter_context(local_stack())
        harness = Harness(stack, servers, size, work_dir)
        for name in chosen:
            try:
                await SCENARIOS[name](harness)
            except Exception:
                traceback.print_exc()
                harness.say(f"{name} failed; going on with the others (logs in {work_dir})")
                failed.append(name)
        print()
        print(format_table(harness.rows))
        print()
        write_json(
            options.json,
            harness.rows,
            REPO,
            {"quick": size.quick, "size": asdict(size), "scenarios": chosen, "failed": failed},
        )
        harness.say(f"table written to {options.json}; stopping what the run started")
    print(f"done in {time.monotonic() - started:.0f}s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


async def run_until_stopped(options: argparse.Namespace) -> int:
    """`run`, cancelled by SIGTERM as asyncio cancels it on Ctrl-C: either way through the cleanup."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(options)


def main() -> None:
    # The event store and the rebuilds run in this process: with the same settings as the services'.
    tune_garbage_collector()
    try:
        sys.exit(asyncio.run(run_until_stopped(arguments())))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; what the run started is stopped and removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
