"""Money is never lost: a bounded chaos run (bench/chaos.py) of shopping, declines and retries,
cancels, expiries, late payments and refunds, while the saga and a payments instance are killed and
restarted at random points; then every order's money and every product's units balance, the saga's
dead letters are empty and reconciliation finds nothing. `python -m bench --only chaos` runs it longer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.chaos import PAYMENT_WINDOW_SECONDS, ChaosStack, report, run_chaos, start_stack
from tests.support.deployment import Deployment
from tests.support.servers import Servers


@pytest.fixture
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    deployment = Deployment(
        servers, tmp_path_factory.mktemp("chaos"), order_payment_window_seconds=PAYMENT_WINDOW_SECONDS
    )
    deployment.provision()
    running = start_stack(deployment)
    yield running
    running.stop()


def test_every_order_ends_paid_or_refunded_under_kills_and_the_books_balance(stack: ChaosStack) -> None:
    tally, books = run_chaos(stack, seconds=60, shoppers=8, seed=17)
    report(tally, books, print)
    assert tally.counts["saga kills"] + tally.counts["payments kills"] > 0
    assert tally.counts["orders placed"] > 0 and books.counts["payments captured"] > 0
    assert books.balanced, "\n".join(books.violations)
