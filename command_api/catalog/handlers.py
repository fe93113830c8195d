"""Load -> decide -> append for the catalog context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from command_api.catalog import domain
from command_api.catalog.commands import AdjustStock, CreateProduct, UpdateProduct
from command_api.catalog.domain import PRODUCT, ProductState, product_aggregate_id
from command_api.eventstore.errors import UnknownAggregate
from command_api.eventstore.model import CommandContext, Committed, Decision, EventStore, Loaded
from event_schemas.envelope import Event
from event_schemas.money import Money


@dataclass(frozen=True)
class ProductChanged:
    """A command's outcome: what it appended and the product as it is after it."""

    committed: Committed
    product: ProductState
    version: int


class _Recording:
    """Wraps a decision to keep the state it leads to, so the response needs no second read."""

    def __init__(self, decide: Decision[ProductState]) -> None:
        self._decide = decide
        self.after: Loaded[ProductState] | None = None

    def __call__(self, product: Loaded[ProductState]) -> Sequence[Event]:
        events = self._decide(product)
        state = product.state
        for event in events:
            state = PRODUCT.evolve(state, event)
        self.after = Loaded(
            product.aggregate_id, state, product.version + len(events), product.next_numeric_id
        )
        return events


@dataclass
class CatalogHandlers:
    store: EventStore

    async def create(self, command: CreateProduct, context: CommandContext, now: datetime) -> ProductChanged:
        price = Money(amount=command.price, currency=command.currency)
        decide = _Recording(
            lambda product: domain.create(
                product,
                name=command.name,
                description=command.description,
                price=price,
                stock=command.stock,
                now=now,
            )
        )
        committed = await self.store.create(PRODUCT, decide, context)
        return await self._outcome(committed, decide, committed.events[0].aggregate_id)

    async def update(
        self, product_id: int, command: UpdateProduct, context: CommandContext, now: datetime
    ) -> ProductChanged:
        def decide(product: Loaded[ProductState]) -> list[Event]:
            currency = product.state.price.currency if product.state.price else "USD"
            return domain.update(
                product,
                name=command.name,
                description=command.description,
                price=None if command.price is None else Money(amount=command.price, currency=currency),
                stock=command.stock,
                now=now,
            )

        return await self._execute(product_id, decide, context)

    async def delete(self, product_id: int, context: CommandContext, now: datetime) -> ProductChanged:
        return await self._execute(product_id, lambda product: domain.delete(product, now), context)

    async def adjust_stock(
        self, product_id: int, command: AdjustStock, context: CommandContext, now: datetime
    ) -> ProductChanged:
        return await self._execute(
            product_id,
            lambda product: domain.adjust_stock(product, delta=command.delta, reason=command.reason, now=now),
            context,
        )

    async def _execute(
        self, product_id: int, decision: Decision[ProductState], context: CommandContext
    ) -> ProductChanged:
        aggregate_id = product_aggregate_id(product_id)
        decide = _Recording(decision)
        try:
            committed = await self.store.execute(PRODUCT, aggregate_id, decide, context)
        except UnknownAggregate as error:
            raise domain.ProductNotFound("product not found") from error
        return await self._outcome(committed, decide, aggregate_id)

    async def _outcome(self, committed: Committed, decide: _Recording, aggregate_id: str) -> ProductChanged:
        # An idempotent replay decided nothing this time: answer with the product as it is now.
        after = decide.after if decide.after is not None else await self.store.load(PRODUCT, aggregate_id)
        return ProductChanged(committed, after.state, after.version)
