"""The browser tests' fixtures: the session's test deployment behind a real nginx edge, an admin who logs
in through the admin page, and the machine's Chromium driven by Playwright (never a downloaded browser).
In CI a missing chromium or nginx is a failure, elsewhere a skip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from tests.support.browser import CHROMIUM_ARGS, chromium_or_unavailable
from tests.support.deployment import Deployment
from tests.support.edge import EdgeProcess, address
from tests.support.processes import HttpService, ServiceProcess
from tests.support.users_client import PASSWORD

# What a user waits for at most: the saga confirms an order, and payment makes it paid, within this.
SAGA_SECONDS = 30


@pytest.fixture(scope="session")
def edge(
    deployment: Deployment,
    users_service: HttpService,
    catalog_service: HttpService,
    orders_service: HttpService,
    payments_service: HttpService,
    order_saga: ServiceProcess,
) -> Iterator[EdgeProcess]:
    """nginx serving the storefront and routing the seed's paths to the deployment's services."""
    services = {"users": users_service, "catalog": catalog_service, "orders": orders_service}
    services["payments"] = payments_service
    upstreams = {name: [address(service.url)] for name, service in services.items()}
    edge = EdgeProcess("edge-browser", upstreams, deployment.work_dir).start()
    yield edge
    edge.stop()


@pytest.fixture(scope="session")
def admin_login(admin_token: str, deployment: Deployment) -> tuple[str, str]:
    """The deployment's admin (registered and granted the role as `./run admin` does): email, password."""
    return deployment.admin_email, PASSWORD


@pytest.fixture(scope="module")
def browser(
    tmp_path_factory: pytest.TempPathFactory, edge: EdgeProcess, admin_login: tuple[str, str]
) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile, for one module. Playwright's sync API keeps an event loop running
    in this thread while it is open, so nothing may call asyncio.run meanwhile: the deployment's
    fixtures (which do) are set up first, and the browser is closed before other modules run."""
    chromium = chromium_or_unavailable()
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def tab(browser: BrowserContext) -> Iterator[Page]:
    """A fresh tab: its sessionStorage (the logged-in token) starts empty."""
    page = browser.new_page()
    yield page
    # Shown by pytest only when the test failed: what the page said last.
    print(f"last page {page.url}:\n{page.locator('body').inner_text()}")
    page.close()
