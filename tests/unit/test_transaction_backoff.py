"""The event store's writers retry a refused transaction start after 2 ms, not aiokafka's 20 ms."""

from __future__ import annotations

import aiokafka.producer.sender

from command_api.eventstore.transaction_backoff import (
    CONCURRENT_TRANSACTIONS_BACKOFF_SECONDS,
    shorten_concurrent_transactions_backoff,
)


def test_the_concurrent_transactions_backoff_is_shortened() -> None:
    shorten_concurrent_transactions_backoff()
    assert aiokafka.producer.sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_BACKOFF_SECONDS == 0.002
