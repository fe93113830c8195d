"""A partition's state on disk: flushed with its offset, it comes back equal after a restart; memory
holds a bounded cache; what leaves the idempotency window is deleted; a store of another state shape
is started over."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT, ProductState
from command_api.eventstore.model import CommandContext, Loaded
from command_api.eventstore.partition_state import KEY_WINDOW, PartitionState, PendingBatch
from command_api.eventstore.partition_store import PartitionStore
from event_schemas.envelope import Event
from event_schemas.money import Money
from tests.support.folding import commit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def on_disk(path: Path, cache_aggregates: int = 10_000) -> PartitionState:
    return PartitionState(2, [PRODUCT], PartitionStore(path, [PRODUCT]), cache_aggregates)


def a_partition_with_history(state: PartitionState) -> PartitionState:
    """Products created (one with an idempotency key), one with a hold for an order."""
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


def adjust(
    state: PartitionState, aggregate_id: str, delta: int, *, key: str | None = None, at: datetime = NOW
) -> None:
    batch = PendingBatch(state)
    outcome = batch.decide(
        PRODUCT,
        aggregate_id,
        lambda p: domain.adjust_stock(p, delta=delta, reason="count", now=at),
        CommandContext(idempotency_key=key, request_fingerprint=key),
    )
    outcome(commit(state, batch))


def test_a_restarted_state_resumes_from_its_store_with_every_aggregate_its_ids_and_results(
    tmp_path: Path,
) -> None:
    state = a_partition_with_history(on_disk(tmp_path / "p2.sqlite3"))
    state.flush()
    expected = {a: state.load(PRODUCT, a) for a in ("product-1002", "product-2002", "product-3002")}
    result = state.result_for("product-1002", "key-0")
    state.store.close()

    restarted = on_disk(tmp_path / "p2.sqlite3")
    assert restarted.next_offset == 4 and restarted.last_event is not None and restarted.last_event[0] == 3
    for aggregate_id, loaded in expected.items():
        assert restarted.load(PRODUCT, aggregate_id) == loaded
    held = restarted.load(PRODUCT, "product-1002").state
    assert dict(held.held) == {"order-7": 2} and held.stock == 3
    assert restarted.load(PRODUCT, "product-9002").next_numeric_id == 4002
    assert restarted.created_with_key(PRODUCT, "key-0") == "product-1002"
    assert restarted.result_for("product-1002", "key-0") == result
    adjust(restarted, "product-1002", 1)
    assert restarted.load(PRODUCT, "product-1002").state.stock == 4


def test_what_was_not_flushed_is_read_again_from_the_log(tmp_path: Path) -> None:
    state = a_partition_with_history(on_disk(tmp_path / "p2.sqlite3"))
    state.flush()
    adjust(state, "product-2002", 1)  # folded, not flushed: the process dies here
    state.store.close()
    restarted = on_disk(tmp_path / "p2.sqlite3")
    assert restarted.next_offset == 4, "the catch-up resumes where the store stopped"
    assert restarted.load(PRODUCT, "product-2002").state.stock == 5


def test_memory_holds_the_cache_and_what_changed_since_the_last_flush(tmp_path: Path) -> None:
    state = on_disk(tmp_path / "p2.sqlite3", cache_aggregates=5)
    for n in range(40):

        def created(product: Loaded[ProductState], n: int = n) -> list[Event]:
            return domain.create(
                product, name=f"Lamp {n}", description="", price=Money(amount=Decimal("1")), stock=1, now=NOW
            )

        batch = PendingBatch(state)
        batch.decide_new(PRODUCT, created, CommandContext())
        commit(state, batch)
    assert state.changed_since_flush == 40
    state.flush()
    assert state.changed_since_flush == 0 and len(state._cache) == 5
    for n in range(1, 41):
        assert state.load(PRODUCT, f"product-{n * 1000 + 2}").state.name == f"Lamp {n - 1}"
    assert len(state._cache) == 5
    assert state.store.aggregates() == 40


def test_a_flush_deletes_the_keys_that_left_the_window_and_a_reused_key_starts_anew(tmp_path: Path) -> None:
    state = a_partition_with_history(on_disk(tmp_path / "p2.sqlite3"))
    adjust(state, "product-2002", 1, key="adjust-1")
    state.flush()
    assert state.keys_remembered() == 2
    later = NOW + KEY_WINDOW + timedelta(seconds=1)
    adjust(state, "product-3002", 1, key="adjust-1", at=later)  # the same key, a day later
    assert state.result_for("product-2002", "adjust-1") is None, "out of the window: answered no more"
    assert state.created_with_key(PRODUCT, "key-0") is None
    state.flush()
    assert state.keys_remembered() == 1
    assert state.store.result("product-2002", "adjust-1") is None
    assert state.result_for("product-3002", "adjust-1") is not None


def test_a_store_of_another_state_shape_is_started_over(tmp_path: Path) -> None:
    state = a_partition_with_history(on_disk(tmp_path / "p2.sqlite3"))
    state.flush()
    state.store.close()
    newer_kind = replace(PRODUCT, state_version=2)
    reopened = PartitionState(2, [newer_kind], PartitionStore(tmp_path / "p2.sqlite3", [newer_kind]))
    assert reopened.next_offset == 0 and reopened.store.aggregates() == 0
