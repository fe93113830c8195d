"""How long the storefront takes to show its product list in a real browser (the machine's Chromium,
through the edge), idle and while wrk loads the same edge: from the navigation's start until the list
and its summary are on the page, which takes the HTML, the JavaScript modules and `GET /products`."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM_ARGS, chromium_or_unavailable

# The storefront's product list has rendered its answer: `p.summary` says how many products it shows.
LIST_SHOWN = "main p.summary"


@dataclass(frozen=True)
class PageLoads:
    shown_ms: list[float]  # navigation start -> product list shown, one per load
    dom_ready_ms: list[float]  # navigation start -> DOMContentLoaded


def page_loads(url: str, count: int) -> PageLoads:
    """`count` loads of `url`, each in a fresh browser context (a first visit: nothing cached). Blocking:
    run it in a thread (Playwright's sync API keeps its own event loop)."""
    shown: list[float] = []
    dom_ready: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_or_unavailable(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            for _ in range(count):
                context = browser.new_context()
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector(LIST_SHOWN, timeout=30_000)
                shown.append(float(page.evaluate("performance.now()")))
                dom_ready.append(
                    float(
                        page.evaluate(
                            "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
                        )
                    )
                )
                context.close()
        finally:
            browser.close()
    return PageLoads(shown, dom_ready)
