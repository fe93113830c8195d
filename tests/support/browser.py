"""The machine's Chromium, as the browser tests and the page-load benchmark start it through Playwright:
never a browser that Playwright would download."""

from __future__ import annotations

import shutil

from tests.support.servers import unavailable

# Chromium on a closed network: without the background-networking flags its own connections (updates,
# field trials) are refused and it stalls; the sandbox needs privileges the test machine lacks.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_unavailable() -> str:
    """Debian's chromium (`infra/stack.sh tools chromium`); missing: a failure in CI, a skip elsewhere."""
    chromium = shutil.which("chromium")
    if chromium is None:
        unavailable("chromium is not installed (infra/stack.sh tools chromium)")
        raise AssertionError("unreachable: unavailable() fails or skips")
    return chromium
