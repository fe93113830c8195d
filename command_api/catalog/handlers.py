"""Load -> decide -> append for the catalog context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from command_api.catalog import domain
from command_api.catalog.commands import (
    AdjustStock,
    CreateProduct,
    ReservationCommand,
    ReserveStock,
    ReturnStock,
    UpdateProduct,
)
from command_api.catalog.domain import PRODUCT, ProductState, product_aggregate_id
from command_api.eventstore.errors import UnknownAggregate
from command_api.eventstore.model import CommandContext, Committed, Decision, EventStore, Loaded
from event_schemas.envelope import Event
from event_schemas.money import Money


@dataclass(frozen=True)
class ProductChanged:
    """A command's outcome: what it appended and the product as it left it."""

    committed: Committed
    product: ProductState
    version: int


@dataclass(frozen=True)
class ReservationAnswer:
    """The hold an order has on a product after a saga command (the first outcome, if repeated)."""

    order_id: str
    product_id: int
    outcome: domain.ReservationOutcome | None
    held: int
    stock: int


@dataclass
class CatalogHandlers:
    store: EventStore

    async def create(self, command: CreateProduct, context: CommandContext, now: datetime) -> ProductChanged:
        price = Money(amount=command.price, currency=command.currency)
        committed = await self.store.create(
            PRODUCT,
            lambda product: domain.create(
                product,
                name=command.name,
                description=command.description,
                price=price,
                stock=command.stock,
                now=now,
            ),
            context,
        )
        return ProductChanged(committed, committed.state, committed.version)

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

    async def reserve(
        self, command: ReserveStock, context: CommandContext, now: datetime
    ) -> ReservationAnswer:
        return await self._reservation(
            command,
            lambda product: domain.reserve_stock(
                product, order_id=command.order_id, quantity=command.quantity, now=now
            ),
            context,
        )

    async def release(
        self, command: ReservationCommand, context: CommandContext, now: datetime
    ) -> ReservationAnswer:
        return await self._reservation(
            command,
            lambda product: domain.release_stock(product, order_id=command.order_id, now=now),
            context,
        )

    async def commit(
        self, command: ReservationCommand, context: CommandContext, now: datetime
    ) -> ReservationAnswer:
        return await self._reservation(
            command,
            lambda product: domain.commit_reservation(product, order_id=command.order_id, now=now),
            context,
        )

    async def return_stock(
        self, command: ReturnStock, context: CommandContext, now: datetime
    ) -> ProductChanged:
        return await self._execute(
            command.product_id,
            lambda product: domain.return_stock(
                product,
                order_id=command.order_id,
                refund_id=command.refund_id,
                quantity=command.quantity,
                now=now,
            ),
            context,
        )

    async def _reservation(
        self, command: ReservationCommand, decision: Decision[ProductState], context: CommandContext
    ) -> ReservationAnswer:
        changed = await self._execute(command.product_id, decision, context)
        product = changed.product
        return ReservationAnswer(
            command.order_id,
            command.product_id,
            product.outcomes.get(command.order_id),
            product.held.get(command.order_id, 0),
            product.stock,
        )

    async def _execute(
        self, product_id: int, decision: Decision[ProductState], context: CommandContext
    ) -> ProductChanged:
        try:
            committed = await self.store.execute(PRODUCT, product_aggregate_id(product_id), decision, context)
        except UnknownAggregate as error:
            raise domain.ProductNotFound("product not found") from error
        # A retry with the same key answers with the product as the first attempt left it.
        return ProductChanged(committed, committed.state, committed.version)
