"""The order saga's rules: what follows each order event. They talk to the catalog and to the orders
command side through two small ports, so they read as the process and are tested without a server.

Each step takes effect once although a step may run more than once (the runner redelivers events
after a crash or a rebalance, and an operator may replay the whole log), because each step is decided
from the order's own state and every command it sends is idempotent by a deterministic key that the
aggregates keep themselves:
- stock is reserved only for an order still pending: a replay of an old order's placement reserves
  nothing, however long ago it was placed (a reservation is also decided once per (product, order));
- the order records its reservations only while pending; afterwards it decides nothing, and if it
  has ended meanwhile (cancelled, say) it answers `release_held`, so a hold made for it is given back
  (a confirmed order keeps its holds: that was a repeated report);
- a release or a commit moves only what is held for the order, at most once;
- an order becomes paid once, by one payment (its success reported again changes nothing); a declined
  attempt changes nothing: the order stays payable with another card until its deadline;
- a refund's units come back to stock once (by refund id), and only if the order's units were taken
  (it was paid); the order records the refund once;
- a payment the order cannot take (it succeeded after the order ended, or another payment paid it)
  is refunded once (the payment remembers its refunds).
A command side's refusal of a step is either compensated (a payment that cannot be taken is refunded;
a reservation refused is a line that cannot be held) or raised as `StepRefused`, which the runner
puts in the saga's dead letters; nothing is dropped silently.
The saga's own state is the Order aggregate (rebuilt from the log like any other), and the runner's
position in the orders topic, committed after the steps of an event are done.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from event_schemas.envelope import Event
from event_schemas.orders import (
    OrderCancelled,
    OrderExpired,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    RejectionReason,
)
from event_schemas.payments import PaymentRefunded, PaymentSucceeded, RefundedUnits

# The step each event sets off, by name: what the runner counts (saga_steps_total{step, outcome}).
# Events not named here (OrderConfirmed, PaymentInitiated, PaymentFailed...) set off none.
STEPS: tuple[tuple[type[Event] | tuple[type[Event], ...], str], ...] = (
    (OrderPlaced, "reserve_stock"),
    ((OrderRejected, OrderCancelled, OrderExpired), "release_stock"),
    (PaymentSucceeded, "mark_order_paid"),
    (OrderPaid, "commit_stock"),
    (PaymentRefunded, "return_stock"),
)


def step_for(event: Event) -> str | None:
    """The name of the step `OrderSaga.handle` takes for `event`, or None if it takes none."""
    for kinds, step in STEPS:
        if isinstance(event, kinds):
            return step
    return None


def reservation_id(order_number: int) -> str:
    """How the catalog names an order's holds."""
    return f"order-{order_number}"


class StepFailed(Exception):
    """A step the saga could not take: it goes to the saga's dead letters, where an operator retries
    or skips it, and the order's later steps wait behind it."""


class StepRefused(StepFailed):
    """A command side refused the step for good (a 4xx that no compensation answers)."""


class StepUnavailable(StepFailed):
    """A command side stayed down or busy for longer than the saga retries one step."""


# Where an order stands, for the saga: only a pending order's stock is reserved, and only a paid
# order's units (taken from stock) come back at a refund.
ORDER_TOOK_ITS_UNITS = frozenset({"paid", "refunded"})


@dataclass(frozen=True)
class OrderView:
    status: str
    product_ids: tuple[int, ...]


@dataclass(frozen=True)
class Reservation:
    product_id: int
    reserved: bool
    reason: RejectionReason | None = None


class CatalogCommands(Protocol):
    async def reserve(self, order_id: str, product_id: int, quantity: int) -> Reservation: ...

    async def release(self, order_id: str, product_id: int) -> None: ...

    async def commit(self, order_id: str, product_id: int) -> None:
        """The order is paid: what is held for it leaves stock for good."""
        ...

    async def return_stock(self, order_id: str, refund_id: str, product_id: int, qty: int) -> None:
        """Refunded units back in stock, once per refund."""
        ...


class PaymentCommands(Protocol):
    async def refund_unclaimed(self, order_number: int) -> None:
        """Give back a payment that succeeded after its order had ended."""
        ...


class OrderCommands(Protocol):
    async def record_reservations(self, order_number: int, results: list[Reservation]) -> bool:
        """Record the outcomes; True when the order no longer waits for them (release what is held)."""
        ...

    async def view(self, order_number: int, *, proven: bool = True) -> OrderView:
        """The order's status and the products of its lines, as its writer knows them now; not
        `proven`, as its writer has folded them (no Kafka round trip, but possibly a status that a
        writer fenced a moment ago has not caught up with: one of the past, never of the future)."""
        ...

    async def expire(self, order_number: int) -> None: ...

    async def mark_paid(self, order_number: int, intent_id: str, amount_minor: int) -> bool:
        """False when the order had ended before its payment succeeded (it can no longer be paid)."""
        ...

    async def record_refund(
        self,
        order_number: int,
        refund_id: str,
        amount_minor: int,
        units: tuple[RefundedUnits, ...],
        fully: bool,
    ) -> None: ...


@dataclass
class OrderSaga:
    catalog: CatalogCommands
    orders: OrderCommands
    payments: PaymentCommands

    async def handle(self, event: Event) -> None:
        if isinstance(event, OrderPlaced):
            await self.when_order_placed_reserve_stock(event)
        elif isinstance(event, OrderRejected | OrderCancelled | OrderExpired):
            view = await self.orders.view(event.order_number)
            await self.when_order_ended_release_stock(event.order_number, list(view.product_ids))
        elif isinstance(event, PaymentSucceeded):
            await self.when_payment_succeeded_mark_the_order_paid(event)
        elif isinstance(event, OrderPaid):
            await self.when_order_paid_commit_stock(event.order_number)
        elif isinstance(event, PaymentRefunded):
            await self.when_payment_refunded_return_stock(event)

    async def when_order_placed_reserve_stock(self, placed: OrderPlaced) -> None:
        """Hold every line (all or nothing: any shortfall rejects the order, and the rejection
        releases the rest); then tell the order. An order no longer pending (a replay of its
        placement) holds nothing. Its status is read unproven: one that lags can only show pending an
        order that has ended, and the order then answers the reservations with `release_held`."""
        if (await self.orders.view(placed.order_number, proven=False)).status != "pending":
            return
        order_id = reservation_id(placed.order_number)
        results = list(
            await asyncio.gather(
                *(self.catalog.reserve(order_id, line.product_id, line.qty) for line in placed.lines)
            )
        )
        if await self.orders.record_reservations(placed.order_number, results):
            held = [result.product_id for result in results if result.reserved]
            await self.when_order_ended_release_stock(placed.order_number, held)

    async def when_payment_succeeded_mark_the_order_paid(self, succeeded: PaymentSucceeded) -> None:
        """A payment the order cannot take (it came too late: the order expired or was cancelled, and
        its units went back to stock; or another payment paid the order) is refunded in full, so no
        payment is ever kept without its order."""
        if not await self.orders.mark_paid(
            succeeded.order_number, succeeded.intent_id, succeeded.amount_minor
        ):
            await self.payments.refund_unclaimed(succeeded.order_number)

    async def when_order_paid_commit_stock(self, order_number: int) -> None:
        order_id = reservation_id(order_number)
        view = await self.orders.view(order_number)
        await asyncio.gather(*(self.catalog.commit(order_id, product_id) for product_id in view.product_ids))

    async def when_payment_refunded_return_stock(self, refunded: PaymentRefunded) -> None:
        """Units come back only if the order took them: a payment refunded after its order ended (a
        late payment) brings none back, since they went back to stock when the order ended."""
        order_id = reservation_id(refunded.order_number)
        if refunded.units and (await self.orders.view(refunded.order_number)).status in ORDER_TOOK_ITS_UNITS:
            await asyncio.gather(
                *(
                    self.catalog.return_stock(order_id, refunded.refund_id, unit.product_id, unit.qty)
                    for unit in refunded.units
                )
            )
        await self.orders.record_refund(
            refunded.order_number, refunded.refund_id, refunded.amount_minor, refunded.units, refunded.fully
        )

    async def when_order_ended_release_stock(self, order_number: int, product_ids: list[int]) -> None:
        order_id = reservation_id(order_number)
        await asyncio.gather(*(self.catalog.release(order_id, product_id) for product_id in product_ids))
