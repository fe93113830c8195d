"""The README's screenshots of the storefront and the admin page, taken in the machine's Chromium against
a running edge: docs/screenshots/storefront.png (the product list) and docs/screenshots/admin.png.

    python -m bench.storefront_screenshots --base-url http://127.0.0.1:8080 --admin-email ops@example.com
    (the admin's password in COMMERCE_ADMIN_PASSWORD; without it, admin.png shows the login form)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from playwright.sync_api import ViewportSize, sync_playwright

from tests.support.browser import CHROMIUM_ARGS, chromium_or_unavailable

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1200, "height": 900}
LIST_SHOWN = "main p.summary"  # the product list has rendered its answer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storefront_screenshots")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--admin-email")
    parser.add_argument("--storefront-hash", default="#/?sort=newest", help="the list the screenshot shows")
    args = parser.parse_args()
    chromium = chromium_or_unavailable()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        page = browser.new_page()
        page.goto(f"{args.base_url}/{args.storefront_hash}")
        page.locator(LIST_SHOWN).wait_for()
        page.screenshot(path=SCREENSHOTS / "storefront.png")

        page.goto(f"{args.base_url}/admin/")
        password = os.environ.get("COMMERCE_ADMIN_PASSWORD")
        if args.admin_email and password:
            form = page.get_by_role("form", name="Log in as an admin")
            form.get_by_label("Email").fill(args.admin_email)
            form.get_by_label("Password").fill(password)
            form.get_by_role("button", name="Log in").click()
            page.get_by_role("caption").filter(has_text="Every customer's orders").wait_for()
            page.get_by_role("button", name="Edit").first.wait_for()
        page.screenshot(path=SCREENSHOTS / "admin.png", full_page=True)
        browser.close()
    print("wrote docs/screenshots/storefront.png and docs/screenshots/admin.png")


if __name__ == "__main__":
    main()
