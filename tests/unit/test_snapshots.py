"""A snapshot of a partition's state comes back equal, and only from a signed record of the same shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT, ProductState
from command_api.eventstore.model import AggregateKind, CommandContext, Loaded
from command_api.eventstore.partition_state import PartitionState, PendingBatch
from command_api.eventstore.snapshots import OFFSET_HEADER, SHAPE_HEADER, SnapshotStore
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.registry import REGISTRY
from tests.support.folding import commit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = b"k" * 32


def snapshot_store(key: bytes = KEY, kinds: Sequence[AggregateKind[Any]] = (PRODUCT,)) -> SnapshotStore:
    return SnapshotStore(
        bootstrap_servers="unused:9092",
        topic="t.catalog.events",
        replication_factor=1,
        key=key,
        kinds=kinds,
        models=[Money, *REGISTRY.classes()],
        timeout=1,
    )


def a_partition_with_history() -> PartitionState:
    """Products created (one with an idempotency key), one with a hold for an order."""
    state = PartitionState(partition=2, kinds=[PRODUCT])
    for n in range(3):

        def created(product: Loaded[ProductState], n: int = n) -> list[Event]:
            price = Money(amount=Decimal("9.99"))
            return domain.create(product, name=f"Lamp {n}", description="", price=price, stock=5, now=NOW)

        key = "key-0" if n == 0 else None
        batch = PendingBatch(state)
        batch.decide_new(PRODUCT, created, CommandContext(idempotency_key=key, request_fingerprint=key))
        commit(state, batch)
    batch = PendingBatch(state)
    batch.decide(
        PRODUCT,
        "product-1002",
        lambda product: domain.reserve_stock(product, order_id="order-7", quantity=2, now=NOW),
        CommandContext(),
    )
    commit(state, batch)
    return state


def decoded(
    store: SnapshotStore, value: bytes, next_offset: int, shape: str | None = None
) -> PartitionState | None:
    headers = {SHAPE_HEADER: (shape or store.shape).encode(), OFFSET_HEADER: str(next_offset).encode()}
    return store.decode(2, headers, value)


def test_a_snapshot_restores_every_aggregate_its_ids_and_its_idempotency_results() -> None:
    state = a_partition_with_history()
    store = snapshot_store()
    value, next_offset = store.encode(state)
    restored = decoded(store, value, next_offset)

    assert restored is not None and restored.next_offset == state.next_offset == 4
    for aggregate_id in ("product-1002", "product-2002", "product-3002"):
        assert restored.load(PRODUCT, aggregate_id) == state.load(PRODUCT, aggregate_id)
    held = restored.load(PRODUCT, "product-1002").state
    assert dict(held.held) == {"order-7": 2} and held.stock == 3
    assert restored.load(PRODUCT, "product-9002").next_numeric_id == 4002
    assert restored.created_with_key(PRODUCT, "key-0") == "product-1002"
    assert restored.result_for("product-1002", "key-0") == state.result_for("product-1002", "key-0")
    # It goes on folding from there as the original would.
    batch = PendingBatch(restored)
    batch.decide(
        PRODUCT,
        "product-1002",
        lambda p: domain.adjust_stock(p, delta=1, reason="count", now=NOW),
        CommandContext(),
    )
    commit(restored, batch)
    assert restored.load(PRODUCT, "product-1002").state.stock == 4


def test_a_snapshot_signed_with_another_key_is_ignored() -> None:
    value, next_offset = snapshot_store(key=b"x" * 32).encode(a_partition_with_history())
    assert decoded(snapshot_store(), value, next_offset) is None


def test_a_tampered_snapshot_is_ignored() -> None:
    store = snapshot_store()
    value, next_offset = store.encode(a_partition_with_history())
    assert decoded(store, value[:-1] + bytes([value[-1] ^ 1]), next_offset) is None
    assert decoded(store, value, next_offset + 1) is None


def test_a_snapshot_of_another_state_shape_is_ignored() -> None:
    store = snapshot_store()
    value, next_offset = store.encode(a_partition_with_history())
    newer = snapshot_store(kinds=[replace(PRODUCT, state_version=2)])
    assert newer.shape != store.shape
    assert decoded(newer, value, next_offset, shape=store.shape) is None
