"""The live search projector's first index and a rebuild's swap, or another instance's first index,
in the order that used to leave the alias naming two indices; against the real Elasticsearch."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.search_runner import create_index, ensure_index
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


async def indices_of(es: AsyncElasticsearch, alias: str) -> tuple[list[str], list[str]]:
    """The indices the alias names, and every index made for it."""
    named = (
        sorted(await es.indices.get_alias(name=alias)) if await es.indices.exists_alias(name=alias) else []
    )
    made = sorted(await es.indices.get(index=f"{alias}-*"))
    return named, made


async def delete_made(es: AsyncElasticsearch, alias: str) -> None:
    """Every index made for the alias, by name (the server refuses to delete by wildcard)."""
    made = list(await es.indices.get(index=f"{alias}-*"))
    if made:
        await es.indices.delete(index=",".join(made))


def test_a_swap_between_the_live_projectors_look_for_the_alias_and_its_first_index_leaves_one_index(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    projection = ProductSearchProjection(f"t{uuid.uuid4().hex[:10]}")
    swapped_in: list[str] = []

    async def run() -> tuple[list[str], list[str]]:
        async with AsyncElasticsearch(servers.elasticsearch_url) as es:
            look_for_alias = es.indices.exists_alias

            async def a_rebuild_swaps_right_after_the_look(**arguments: Any) -> Any:
                found = await look_for_alias(**arguments)
                if not swapped_in:  # the rebuild's index, put under the alias by its swap
                    swapped_in.append(await create_index(es, projection, with_alias=True))
                return found

            try:
                with monkeypatch.context() as patched:
                    patched.setattr(es.indices, "exists_alias", a_rebuild_swaps_right_after_the_look)
                    await ensure_index(es, projection)
                return await indices_of(es, projection.alias)
            finally:
                await delete_made(es, projection.alias)

    named, made = asyncio.run(run())
    assert swapped_in, "the swap never came between the look and the create"
    assert named == swapped_in, f"the alias names {named}, not the rebuilt index alone"
    assert made == swapped_in, f"the live projector's index is left behind: {made}"


def test_two_live_projectors_that_both_find_no_alias_end_with_one_index_under_it(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    projection = ProductSearchProjection(f"t{uuid.uuid4().hex[:10]}")

    async def run() -> tuple[list[str], list[str]]:
        async with AsyncElasticsearch(servers.elasticsearch_url) as es:
            look_for_alias = es.indices.exists_alias
            both_looked = asyncio.Barrier(2)

            async def look_then_wait_for_the_other(**arguments: Any) -> Any:
                found = await look_for_alias(**arguments)
                await asyncio.wait_for(both_looked.wait(), 30)
                return found

            try:
                with monkeypatch.context() as patched:
                    patched.setattr(es.indices, "exists_alias", look_then_wait_for_the_other)
                    await asyncio.gather(ensure_index(es, projection), ensure_index(es, projection))
                return await indices_of(es, projection.alias)
            finally:
                await delete_made(es, projection.alias)

    named, made = asyncio.run(run())
    assert len(named) == 1, f"the alias names {named}"
    assert made == named, f"an index is left behind: {made}"
