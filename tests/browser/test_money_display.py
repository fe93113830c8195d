"""Amounts are shown with their currency's own decimals (issue 17, finding 9): JPY none, USD two, and
payments' minor units read per currency. storefront/js/money.js runs in the machine's Chromium, served
from the repository through Playwright's routing (no edge, no services)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Route, sync_playwright

from infra.edge import STOREFRONT
from tests.support.browser import CHROMIUM_ARGS, chromium_or_unavailable

ORIGIN = "http://storefront.test"

SHOWN = """async () => {
  const money = await import("/js/money.js");
  return {
    yen: money.formatMoney("1999.00", "JPY"),
    yenWithoutDecimals: money.formatMoney("1999", "JPY"),
    won: money.formatMoney("5000.00", "KRW"),
    dollars: money.formatMoney("19.99", "USD"),
    dime: money.formatMoney("0.10", "USD"),
    yenLineTotal: money.formatMoney(money.lineTotal("1999.00", 3), "JPY"),
    yenPaymentAmount: money.formatMoney(money.fromMinorUnits(1999, "JPY"), "JPY"),
    dollarPaymentAmount: money.formatMoney(money.fromMinorUnits(1999, "USD"), "USD"),
    yenNotRounded: money.formatMoney("19.99", "JPY"),
  };
}"""


def serve_storefront(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN)
    if path == "/":
        route.fulfill(body="<!doctype html><title>money</title>", content_type="text/html")
    else:
        route.fulfill(path=STOREFRONT / path.lstrip("/"), content_type="text/javascript")


def test_amounts_are_shown_with_their_currencys_own_decimals() -> None:
    chromium = chromium_or_unavailable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-US")
            page.route(f"{ORIGIN}/**", serve_storefront)
            page.goto(f"{ORIGIN}/")
            shown: dict[str, Any] = page.evaluate(SHOWN)
        finally:
            browser.close()
    assert shown == {
        "yen": "¥1,999",
        "yenWithoutDecimals": "¥1,999",
        "won": "₩5,000",
        "dollars": "$19.99",
        "dime": "$0.10",
        "yenLineTotal": "¥5,997",
        "yenPaymentAmount": "¥1,999",
        "dollarPaymentAmount": "$19.99",
        # The API refuses such a price; one recorded before it did is shown as it is, never rounded.
        "yenNotRounded": "¥19.99",
    }
