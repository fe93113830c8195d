"""The one aiokafka setting the event store needs that aiokafka does not expose as an option.

A transaction begun right after the previous one committed is often refused at first with
CONCURRENT_TRANSACTIONS: the broker answers EndTxn before it has written the commit markers
(KAFKA-5477). Clients retry after a short backoff, 20 ms in the Java client and in aiokafka, which
caps a partition's writer at about 50 transactions a second. The markers take about a millisecond
here, so the event store retries after 2 ms: measured, 53 -> 346 back-to-back transactions a second
on one partition (franz-go makes the same backoff an option, ConcurrentTransactionBackoff).
"""

from __future__ import annotations

import aiokafka.producer.sender

CONCURRENT_TRANSACTIONS_BACKOFF_SECONDS = 0.002


def shorten_concurrent_transactions_backoff() -> None:
    # Fail loudly rather than silently lose 6x of throughput if an aiokafka upgrade renames it.
    if not hasattr(aiokafka.producer.sender, "BACKOFF_OVERRIDE"):
        raise RuntimeError("aiokafka no longer has producer.sender.BACKOFF_OVERRIDE; review this module")
    aiokafka.producer.sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_SECONDS
