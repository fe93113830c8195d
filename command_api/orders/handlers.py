"""Load -> decide -> append for the orders context. Product facts come from the orders side's replica
of the catalog (read before deciding); the decisions themselves are pure (command_api/orders/domain.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from command_api.eventstore.errors import UnknownAggregate
from command_api.eventstore.model import CommandContext, Committed, EventStore, Loaded
from command_api.orders import domain
from command_api.orders.commands import AddToCart, ChangeQuantity, RecordRefund, RecordReservations
from command_api.orders.domain import (
    CART,
    ORDER,
    CartState,
    HoldingLimits,
    OrderState,
    Product,
    cart_aggregate_id,
)
from event_schemas.envelope import Event
from event_schemas.money import Money, from_minor_units
from event_schemas.orders import TERMINAL_STATUSES, CartCheckedOut
from event_schemas.payments import RefundedUnits
from read_models.log_ends import LogEnds, caught_up
from read_models.orders import ORDER_PRODUCTS
from read_models.orders_replica import products_by_id
from read_models.pool import Pool
from read_models.read_again import read_again_once_caught_up


@dataclass(frozen=True)
class CartChange:
    committed: Committed
    cart: CartState
    line_id: int


@dataclass(frozen=True)
class OrderChange:
    committed: Committed
    order: OrderState
    # For the saga: the order was no longer waiting for its reservations, so what they hold must go back.
    release_held: bool = False


@dataclass
class OrdersHandlers:
    store: EventStore
    replica: Pool
    payment_window: timedelta
    log_ends: LogEnds
    catalog_topic: str
    limits: HoldingLimits
    replica_wait: float = 5.0

    async def _products(self, ids: Iterable[int]) -> dict[int, Product]:
        """From the replica; a product it has not heard of may have been created just now, so the
        replica first catches up with the catalog's log as it is (boundedly) before it counts as unknown."""
        wanted = sorted(set(ids))
        rows = await read_again_once_caught_up(
            lambda: products_by_id(self.replica, wanted),
            missed=lambda rows: len(rows) < len(wanted),
            catch_up=lambda: caught_up(
                self.replica, ORDER_PRODUCTS, self.catalog_topic, self.log_ends, within=self.replica_wait
            ),
        )
        return {
            row.product_id: Product(
                row.product_id,
                row.name,
                Money(amount=row.price, currency=row.currency),
                row.stock,
                row.deleted,
            )
            for row in rows.values()
        }

    async def add_to_cart(
        self, customer_id: int, command: AddToCart, context: CommandContext, now: datetime
    ) -> CartChange:
        product = (await self._products([command.product_id])).get(command.product_id)
        committed = await self.store.execute(
            CART,
            cart_aggregate_id(customer_id),
            lambda cart: domain.add_to_cart(
                cart,
                customer_id=customer_id,
                product_id=command.product_id,
                product=product,
                qty=command.qty,
                limits=self.limits,
                now=now,
            ),
            context,
        )
        cart: CartState = committed.state
        line = cart.line_for(command.product_id)
        assert line is not None
        return CartChange(committed, cart, line.line_id)

    async def change_quantity(
        self, customer_id: int, line_id: int, command: ChangeQuantity, context: CommandContext, now: datetime
    ) -> CartChange:
        # Which product the line is: the cart's decision checks the line again.
        cart = (await self.store.peek(CART, cart_aggregate_id(customer_id))).state
        line = cart.line(line_id)
        product = None if line is None else (await self._products([line.product_id])).get(line.product_id)
        committed = await self.store.execute(
            CART,
            cart_aggregate_id(customer_id),
            lambda loaded: domain.change_quantity(
                loaded,
                customer_id=customer_id,
                line_id=line_id,
                product=product,
                qty=command.qty,
                limits=self.limits,
                now=now,
            ),
            context,
        )
        return CartChange(committed, committed.state, line_id)

    async def remove_line(
        self, customer_id: int, line_id: int, context: CommandContext, now: datetime
    ) -> CartChange:
        committed = await self.store.execute(
            CART,
            cart_aggregate_id(customer_id),
            lambda cart: domain.remove_line(cart, customer_id=customer_id, line_id=line_id, now=now),
            context,
        )
        return CartChange(committed, committed.state, line_id)

    async def place_order(
        self, customer_id: int, context: CommandContext, now: datetime
    ) -> tuple[Committed, int]:
        """The order's number, from the cart's checkout (a retry with the same key finds the first).

        The orders the cart counts as open are read first, in the cart's partition (where its orders
        are created), then the cart decides: an order placed in between is in the cart it decides on,
        and an order read as ended stays ended, so the limits can be overcounted for a moment, never
        undercounted, however many orders are placed at once. Both reads are peeks (no Kafka round
        trip): the cart's decision checks its lines again, and an order's status only moves on, so a
        state that lags the log can overcount the open orders, never undercount them."""
        cart = (await self.store.peek(CART, cart_aggregate_id(customer_id))).state
        products = await self._products(line.product_id for line in cart.lines)
        orders = await self._orders(order.order_number for order in cart.open_orders)
        committed = await self.store.create_beside(
            CART,
            cart_aggregate_id(customer_id),
            ORDER,
            lambda loaded_cart, order: domain.place_order(
                loaded_cart,
                order,
                customer_id=customer_id,
                products=products,
                orders=orders,
                limits=self.limits,
                now=now,
            ),
            context,
        )
        checked_out = next(event for event in committed.events if isinstance(event, CartCheckedOut))
        return committed, checked_out.order_number

    async def cancel_order(
        self, customer_id: int, order_number: int, context: CommandContext, now: datetime
    ) -> OrderChange:
        committed = await self._on_order(
            order_number,
            lambda order: domain.cancel(order, customer_id=customer_id, reason="customer", now=now),
            context,
        )
        return OrderChange(committed, committed.state)

    async def record_reservations(
        self, order_number: int, command: RecordReservations, context: CommandContext, now: datetime
    ) -> OrderChange:
        results = {result.product_id: (result.reserved, result.reason) for result in command.results}
        committed = await self._on_order(
            order_number,
            lambda order: domain.record_reservations(
                order, results=results, payment_window=self.payment_window, now=now
            ),
            context,
        )
        order: OrderState = committed.state
        # Nothing decided because the order ended meanwhile (cancelled, say): what is held goes back. A
        # confirmed or paid order keeps its holds (this is a repeated report of its own reservations).
        late = not committed.events and order.status in TERMINAL_STATUSES
        return OrderChange(committed, order, release_held=late)

    async def mark_paid(
        self, order_number: int, intent_id: str, amount_minor: int, context: CommandContext, now: datetime
    ) -> OrderChange:
        committed = await self._on_order(
            order_number,
            lambda order: domain.mark_paid(order, intent_id=intent_id, amount_minor=amount_minor, now=now),
            context,
        )
        return OrderChange(committed, committed.state)

    async def record_refund(
        self, order_number: int, command: RecordRefund, context: CommandContext, now: datetime
    ) -> OrderChange:
        units = tuple(RefundedUnits(product_id=unit.product_id, qty=unit.qty) for unit in command.units)

        def decide(order: Loaded[OrderState]) -> list[Event]:
            total = order.state.total
            if total is None:
                raise domain.OrderNotFound("order not found")
            amount = from_minor_units(command.amount_minor, total.currency)
            return domain.record_refund(
                order, refund_id=command.refund_id, amount=amount, units=units, fully=command.fully, now=now
            )

        committed = await self._on_order(order_number, decide, context)
        return OrderChange(committed, committed.state)

    async def expire(self, order_number: int, context: CommandContext, now: datetime) -> OrderChange:
        committed = await self._on_order(order_number, lambda order: domain.expire(order, now=now), context)
        return OrderChange(committed, committed.state)

    async def _orders(self, order_numbers: Iterable[int]) -> dict[int, OrderState]:
        """Their writer's states as folded (peeks: see `place_order`)."""
        numbers = list(order_numbers)
        loaded = await asyncio.gather(
            *(self.store.peek(ORDER, domain.order_aggregate_id(number)) for number in numbers)
        )
        return {number: order.state for number, order in zip(numbers, loaded, strict=True)}

    async def order(self, order_number: int, *, proven: bool = True) -> OrderState:
        """The order as its writer knows it. Not `proven`, a peek (no ownership proof): for a caller
        that a state lagging the log cannot mislead, since an order's status only moves on; an order
        the peek does not find is asked for through the log, as it may just have been placed."""
        aggregate_id = domain.order_aggregate_id(order_number)
        try:
            loaded = await (self.store.load if proven else self.store.peek)(ORDER, aggregate_id)
            if not proven and not loaded.state.placed:
                loaded = await self.store.load(ORDER, aggregate_id)
        except UnknownAggregate as error:
            raise domain.OrderNotFound("order not found") from error
        if not loaded.state.placed:
            raise domain.OrderNotFound("order not found")
        return loaded.state

    async def _on_order(
        self, order_number: int, decide: domain.OrderDecision, context: CommandContext
    ) -> Committed:
        try:
            return await self.store.execute(ORDER, domain.order_aggregate_id(order_number), decide, context)
        except UnknownAggregate as error:
            raise domain.OrderNotFound("order not found") from error
