"""A steady stream of commands at a fixed rate, in a process of its own, beside a wrk run:

    python -m bench.steady_writes SPEC.json

SPEC (written by the bench): url, path (with `{id}`), ids, body, token, rate (commands/s), seconds,
in_flight. Requests are sent on a fixed schedule (open loop: a slow answer does not slow the next
send), over the ids in turn, with at most `in_flight` unanswered; a send that has to wait for a free
slot is counted as late. Prints `started` once its connections can open, then one JSON line with
what it got done (see `Outcome`).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from bench.client import send, session
from bench.lag import percentile


@dataclass(frozen=True)
class Spec:
    url: str
    path: str
    ids: list[int]
    body: str
    token: str
    rate: float
    seconds: float
    in_flight: int


@dataclass
class Outcome:
    sent: int = 0
    ok: int = 0  # answered below 400
    failures: int = 0  # answered 400 or more, or not at all
    late: int = 0  # sent after their time, waiting for a free slot
    seconds: float = 0.0  # from the first send to the last answer
    first_failure: str = ""
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        figures = asdict(self)
        del figures["latencies_ms"]
        found = self.latencies_ms
        return figures | {
            "rate": self.rate,
            "p50_ms": percentile(found, 0.5) if found else None,
            "p99_ms": percentile(found, 0.99) if found else None,
        }


async def write_steadily(spec: Spec) -> Outcome:
    outcome = Outcome()
    headers = {"Authorization": f"Bearer {spec.token}"} if spec.token else {}
    ids = list(spec.ids)
    random.Random(11).shuffle(ids)  # each id in turn, but not in the catalog's order
    slots = asyncio.Semaphore(spec.in_flight)

    async def one(http: aiohttp.ClientSession, product_id: int) -> None:
        sent = time.perf_counter()
        try:
            url = spec.url + spec.path.replace("{id}", str(product_id))
            answer = await send(http, "POST", url, body=spec.body, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as error:
            outcome.failures += 1
            outcome.first_failure = outcome.first_failure or repr(error)
            return
        finally:
            slots.release()
        if answer.status >= 400:
            outcome.failures += 1
            outcome.first_failure = outcome.first_failure or f"{answer.status}: {answer.text[:300]}"
            return
        outcome.ok += 1
        outcome.latencies_ms.append((time.perf_counter() - sent) * 1000)

    async with session(spec.in_flight) as http:
        print("started", flush=True)
        tasks: list[asyncio.Task[None]] = []
        began = time.perf_counter()
        for number in range(round(spec.rate * spec.seconds)):
            due = began + number / spec.rate
            await asyncio.sleep(max(due - time.perf_counter(), 0))
            if slots.locked():
                outcome.late += 1
            await slots.acquire()
            tasks.append(asyncio.create_task(one(http, ids[number % len(ids)])))
            outcome.sent += 1
        await asyncio.gather(*tasks)
        outcome.seconds = time.perf_counter() - began
    return outcome


class SteadyWrites:
    """This module's process, started by the bench with `spec` (written to `spec_path`): entered once it
    sends, `outcome()` once it is done; killed on the way out if it still runs (a failure, Ctrl-C)."""

    def __init__(self, spec: Spec, spec_path: Path) -> None:
        self._spec = spec
        self._spec_path = spec_path
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SteadyWrites:
        self._spec_path.parent.mkdir(parents=True, exist_ok=True)
        self._spec_path.write_text(json.dumps(asdict(self._spec)))
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.steady_writes", str(self._spec_path), stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        first = await asyncio.wait_for(self._process.stdout.readline(), 30)
        if first.strip() != b"started":
            await self._process.wait()
            raise RuntimeError(f"the writer exited with {self._process.returncode} before it started")
        return self

    async def outcome(self) -> dict[str, Any]:
        """What the writer got done (Outcome.summary()), once it has sent its last command."""
        assert self._process is not None and self._process.stdout is not None
        last = await self._process.stdout.read()
        if await self._process.wait() != 0:
            raise RuntimeError(f"the writer exited with {self._process.returncode}")
        summary: dict[str, Any] = json.loads(last)
        return summary

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


def main() -> None:
    spec = Spec(**json.loads(Path(sys.argv[1]).read_text()))
    print(json.dumps(asyncio.run(write_steadily(spec)).summary()), flush=True)


if __name__ == "__main__":
    main()
