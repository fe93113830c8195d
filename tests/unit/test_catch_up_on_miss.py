"""A read that misses without a consistency token reads again once its read model has caught up; a
hit, a read with a token, and a read model that cannot catch up do not read again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from query_api.catch_up_on_miss import read_catching_up_on_miss
from query_api.consistency import ConsistencyToken

ORDERS = "orders"
TOKEN = ConsistencyToken("commerce.orders", 0, 41)


class RowNotFound(LookupError):
    pass


@dataclass
class ReadModel:
    """Rows, and the rows the log holds that the read model has not applied yet: they land when it
    catches up, if it can."""

    rows: dict[int, str]
    behind: dict[int, str] = field(default_factory=dict)
    can_catch_up: bool = True
    reads: int = 0
    waits: list[str] = field(default_factory=list)

    async def caught_up(self, projection: str) -> bool:
        self.waits.append(projection)
        if self.can_catch_up:
            self.rows.update(self.behind)
            self.behind.clear()
        return self.can_catch_up

    async def row(self, key: int) -> str:
        self.reads += 1
        if key not in self.rows:
            raise RowNotFound(f"no row {key} (read {self.reads})")
        return self.rows[key]

    async def row_or_none(self, key: int) -> str | None:
        self.reads += 1
        return self.rows.get(key)

    async def rows_of(self, keys: list[int]) -> list[str]:
        self.reads += 1
        return [self.rows[key] for key in keys if key in self.rows]


def read_row(model: ReadModel, key: int, token: ConsistencyToken | None = None) -> str:
    return asyncio.run(
        read_catching_up_on_miss(lambda: model.row(key), model, ORDERS, token, missed=RowNotFound)
    )


def read_row_or_none(model: ReadModel, key: int, token: ConsistencyToken | None = None) -> str | None:
    return asyncio.run(
        read_catching_up_on_miss(
            lambda: model.row_or_none(key), model, ORDERS, token, missed=lambda row: row is None
        )
    )


def test_a_row_found_at_once_is_answered_without_waiting() -> None:
    model = ReadModel({1: "one"})
    assert read_row(model, 1) == "one"
    assert read_row_or_none(model, 1) == "one"
    assert (model.reads, model.waits) == (2, [])


def test_a_miss_with_a_token_stands_without_waiting() -> None:
    model = ReadModel({}, behind={1: "one"})
    with pytest.raises(RowNotFound, match=r"read 1\)"):
        read_row(model, 1, TOKEN)
    assert read_row_or_none(model, 1, TOKEN) is None
    assert (model.reads, model.waits) == (2, [])


def test_a_miss_is_read_again_once_the_read_model_has_caught_up() -> None:
    model = ReadModel({}, behind={1: "one"})
    assert read_row(model, 1) == "one"
    assert (model.reads, model.waits) == (2, [ORDERS])

    model = ReadModel({}, behind={1: "one"})
    assert read_row_or_none(model, 1) == "one"
    assert (model.reads, model.waits) == (2, [ORDERS])


def test_a_partial_answer_counts_as_a_miss_when_the_caller_says_so() -> None:
    model = ReadModel({1: "one"}, behind={2: "two"})
    keys = [1, 2]
    rows = asyncio.run(
        read_catching_up_on_miss(
            lambda: model.rows_of(keys), model, ORDERS, None, missed=lambda rows: len(rows) < len(keys)
        )
    )
    assert rows == ["one", "two"]
    assert (model.reads, model.waits) == (2, [ORDERS])


def test_a_miss_stands_when_the_read_model_cannot_catch_up() -> None:
    model = ReadModel({}, behind={1: "one"}, can_catch_up=False)
    with pytest.raises(RowNotFound, match=r"read 1\)"):
        read_row(model, 1)
    assert read_row_or_none(model, 1) is None
    assert (model.reads, model.waits) == (2, [ORDERS, ORDERS])


def test_a_row_still_missing_after_the_catch_up_raises_the_second_reads_error() -> None:
    model = ReadModel({})
    with pytest.raises(RowNotFound, match=r"read 2\)"):
        read_row(model, 1)
    assert model.waits == [ORDERS]


def test_a_lookup_error_of_another_kind_is_not_a_miss() -> None:
    model = ReadModel({})

    async def broken() -> str:
        raise KeyError("a bug, not a missing row")

    with pytest.raises(KeyError):
        asyncio.run(read_catching_up_on_miss(broken, model, ORDERS, None, missed=RowNotFound))
    assert model.waits == []
