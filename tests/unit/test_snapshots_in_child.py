"""A snapshot encoded in a forked child: the same bytes, the state as it was at the fork, and the
writer's event loop free meanwhile."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from command_api.catalog import domain
from command_api.catalog.domain import PRODUCT, ProductState
from command_api.eventstore.model import CommandContext, Loaded
from command_api.eventstore.partition_state import PartitionState, PendingBatch
from command_api.eventstore.snapshots import SnapshotNotEncoded, SnapshotStore
from event_schemas.envelope import Event
from event_schemas.money import Money
from tests.support.folding import commit
from tests.unit.test_snapshots import NOW, a_partition_with_history, decoded, snapshot_store


def create_products(state: PartitionState, count: int) -> None:
    """`count` products, each created with an idempotency key (so each keeps its first result too)."""
    for start in range(0, count, 500):
        batch = PendingBatch(state)
        for n in range(start, min(count, start + 500)):

            def created(product: Loaded[ProductState], n: int = n) -> list[Event]:
                price = Money(amount=Decimal("9.99"))
                return domain.create(product, name=f"Lamp {n}", description="", price=price, stock=5, now=NOW)

            context = CommandContext(idempotency_key=f"lamp-{n}", request_fingerprint=f"request-{n}")
            batch.decide_new(PRODUCT, created, context)
        commit(state, batch)


async def largest_loop_gap_while(encoding: asyncio.Task[tuple[bytes, int]]) -> float:
    """The longest the loop went without giving another task a turn until `encoding` was done."""
    largest = 0.0
    last = time.perf_counter()
    while not encoding.done():
        await asyncio.sleep(0)
        now = time.perf_counter()
        largest, last = max(largest, now - last), now
    return largest


def test_the_loop_keeps_turning_while_a_big_snapshot_is_encoded() -> None:
    state = PartitionState(partition=2, kinds=[PRODUCT])
    create_products(state, 20_000)
    store = snapshot_store()
    started = time.perf_counter()
    in_the_loop = store.encode(state)  # what the writer did before: the loop stalls throughout
    stall_in_the_loop = time.perf_counter() - started

    async def encoded_in_child() -> tuple[tuple[bytes, int], float]:
        encoding = asyncio.create_task(store.encode_in_child(state))
        largest_gap = await largest_loop_gap_while(encoding)
        return encoding.result(), largest_gap

    in_child, largest_gap = asyncio.run(encoded_in_child())

    assert in_child == in_the_loop
    assert largest_gap < stall_in_the_loop / 5, (
        f"the loop stalled {largest_gap * 1000:.0f} ms (encoding in the loop: {stall_in_the_loop * 1000:.0f} ms)"
    )


def test_a_snapshot_holds_the_state_as_it_was_when_encoding_began() -> None:
    state = a_partition_with_history()
    store = snapshot_store()

    async def encoded_while_folding() -> tuple[bytes, int]:
        encoding = asyncio.create_task(store.encode_in_child(state))
        await asyncio.sleep(0)  # the child is forked on the task's first step
        create_products(state, 1)  # the writer goes on folding meanwhile
        return await encoding

    value, next_offset = asyncio.run(encoded_while_folding())
    restored = decoded(store, value, next_offset)

    assert next_offset == 4 and state.next_offset == 5
    assert restored is not None and restored.next_offset == 4
    assert restored.load(PRODUCT, "product-4002").version == 0
    assert state.load(PRODUCT, "product-4002").version == 1


def test_a_snapshot_the_child_cannot_encode_fails_in_the_writer_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store: SnapshotStore = snapshot_store()

    def unpicklable(state: PartitionState) -> tuple[bytes, int]:
        raise TypeError("cannot pickle 'generator' object")

    monkeypatch.setattr(store, "encode", unpicklable)
    with pytest.raises(SnapshotNotEncoded, match="cannot pickle 'generator' object"):
        asyncio.run(store.encode_in_child(a_partition_with_history()))
