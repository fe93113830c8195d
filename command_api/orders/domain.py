"""The Cart and Order aggregates: pure decisions and folds.

A cart is one per customer (`cart-<customer id>`, placed by hash); an order is a numbered aggregate
created in its cart's partition (`order-<order number>`), so that placing an order (the cart emptied,
the order created) is one decision committed in one Kafka transaction.

What the orders side knows of products (names, prices, units free to sell) comes from its replica of
the catalog, passed in; the real stock check is the catalog's reservation, driven by the saga.

The catalog holds an order's units until it is paid or ends, so what one customer may hold is limited
(`HoldingLimits`): open orders and the units in them. The cart counts them, since every order of its
customer is placed through it, one decision at a time; an order's end is the order's own event, so
placing an order is decided with the states of the orders the cart counts, read just before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import singledispatch

from command_api.eventstore.model import AggregateKind, Loaded
from event_schemas.envelope import Event
from event_schemas.money import Money, minor_units
from event_schemas.orders import (
    CancellationReason,
    CartCheckedOut,
    CartLineAdded,
    CartLineQuantityChanged,
    CartLineRemoved,
    OrderCancelled,
    OrderConfirmed,
    OrderExpired,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderStatus,
    RejectionReason,
)
from event_schemas.payments import RefundedUnits

MAX_LINES = 100
MAX_QTY = 1_000
# Line ids are `customer id * LINE_SLOTS + slot`: unique across carts, and a line id names its cart.
LINE_SLOTS = 1_000

# The transitions an order may take; anything else is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "rejected", "cancelled"}),
    "confirmed": frozenset({"paid", "expired", "cancelled"}),
    "paid": frozenset({"refunded"}),
}


class OrdersError(Exception):
    """A command the orders context refuses."""


class ProductUnavailable(OrdersError):
    """The product does not exist (in the orders side's replica of the catalog) or was withdrawn."""


class NotEnoughStock(OrdersError):
    pass


class QuantityTooLarge(OrdersError):
    pass


class CartFull(OrdersError):
    pass


class TooManyOpenOrders(OrdersError):
    """The customer already has as many open orders (placed, not yet paid or ended) as one may."""


class TooManyUnitsHeld(OrdersError):
    """The order would take the units held for the customer's open orders over the limit."""


class LineNotFound(OrdersError):
    pass


class CartEmpty(OrdersError):
    pass


class CartChanged(OrdersError):
    """The cart changed while the order was being priced; retry."""


class MixedCurrencies(OrdersError):
    pass


class OrderNotFound(OrdersError):
    pass


class IllegalTransition(OrdersError):
    pass


@dataclass(frozen=True)
class Product:
    """What the orders side knows of a product, from its replica of the catalog."""

    product_id: int
    name: str
    price: Money
    stock: int
    deleted: bool


@dataclass(frozen=True)
class CartLine:
    line_id: int
    product_id: int
    item_name: str
    unit_price: Money
    qty: int


@dataclass(frozen=True)
class HoldingLimits:
    """What one customer may hold at once: orders placed and not yet paid or ended (each holds its
    units in the catalog until then), and the units in them."""

    max_open_orders: int
    max_held_units: int


@dataclass(frozen=True)
class OpenOrder:
    """An order of the cart's customer that was open when last seen, and the units it holds."""

    order_number: int
    units: int


@dataclass(frozen=True)
class CartState:
    customer_id: int = 0
    lines: tuple[CartLine, ...] = ()
    lines_added: int = 0
    # The customer's orders still open at the last checkout, and the one it placed: each checkout drops
    # the ones found ended, so this holds at most as many orders as one customer may have open.
    open_orders: tuple[OpenOrder, ...] = ()

    def line(self, line_id: int) -> CartLine | None:
        return next((line for line in self.lines if line.line_id == line_id), None)

    def line_for(self, product_id: int) -> CartLine | None:
        return next((line for line in self.lines if line.product_id == product_id), None)

    @property
    def units(self) -> int:
        return sum(line.qty for line in self.lines)


@singledispatch
def _apply_cart(event: Event, state: CartState) -> CartState:
    return state


@_apply_cart.register
def _line_added(event: CartLineAdded, state: CartState) -> CartState:
    line = CartLine(event.line_id, event.product_id, event.item_name, event.unit_price, event.qty)
    return replace(
        state, customer_id=event.customer_id, lines=(*state.lines, line), lines_added=state.lines_added + 1
    )


@_apply_cart.register
def _quantity_changed(event: CartLineQuantityChanged, state: CartState) -> CartState:
    lines = tuple(
        replace(line, qty=event.qty) if line.line_id == event.line_id else line for line in state.lines
    )
    return replace(state, lines=lines)


@_apply_cart.register
def _line_removed(event: CartLineRemoved, state: CartState) -> CartState:
    return replace(state, lines=tuple(line for line in state.lines if line.line_id != event.line_id))


@_apply_cart.register
def _checked_out(event: CartCheckedOut, state: CartState) -> CartState:
    still_open = tuple(order for order in state.open_orders if order.order_number not in event.ended_orders)
    placed = OpenOrder(event.order_number, state.units)
    return replace(state, lines=(), open_orders=(*still_open, placed))


def evolve_cart(state: CartState, event: Event) -> CartState:
    return _apply_cart(event, state)


CART = AggregateKind[CartState](name="Cart", initial=CartState(), evolve=evolve_cart, state_version=2)


def cart_aggregate_id(customer_id: int) -> str:
    return f"cart-{customer_id}"


def _next_line_id(cart: CartState, customer_id: int) -> int:
    used = {line.line_id for line in cart.lines}
    slot = cart.lines_added
    while True:
        line_id = customer_id * LINE_SLOTS + slot % (LINE_SLOTS - 1) + 1
        if line_id not in used:
            return line_id
        slot += 1


def _usable(product: Product | None, product_id: int) -> Product:
    if product is None or product.deleted:
        raise ProductUnavailable(f"product {product_id} not found")
    return product


def _within_limits(qty: int, product: Product) -> None:
    if qty > MAX_QTY:
        raise QuantityTooLarge(f"at most {MAX_QTY} units of one product per cart")
    if qty > product.stock:
        raise NotEnoughStock(f"only {product.stock} units of product {product.product_id} are available")


def _orderable(cart: CartState, more_units: int, limits: HoldingLimits) -> None:
    """A cart of more units than one customer may hold could never be ordered: refused as it grows."""
    units = cart.units + more_units
    if units > limits.max_held_units:
        raise TooManyUnitsHeld(
            f"your cart would hold {units} units; one customer may hold at most {limits.max_held_units}"
            " units in unpaid orders: order fewer units"
        )


def add_to_cart(
    cart: Loaded[CartState],
    *,
    customer_id: int,
    product_id: int,
    product: Product | None,
    qty: int,
    limits: HoldingLimits,
    now: datetime,
) -> list[Event]:
    """A product already in the cart adds to its line; the line's new quantity must be available."""
    found = _usable(product, product_id)
    envelope = {
        "aggregate_id": cart.aggregate_id,
        "aggregate_version": cart.version + 1,
        "occurred_at": now,
        "customer_id": customer_id,
        "product_id": product_id,
    }
    existing = cart.state.line_for(product_id)
    if existing is not None:
        _within_limits(existing.qty + qty, found)
        _orderable(cart.state, qty, limits)
        return [CartLineQuantityChanged(**envelope, line_id=existing.line_id, qty=existing.qty + qty)]
    if len(cart.state.lines) >= MAX_LINES:
        raise CartFull(f"a cart holds at most {MAX_LINES} different products")
    _within_limits(qty, found)
    _orderable(cart.state, qty, limits)
    return [
        CartLineAdded(
            **envelope,
            line_id=_next_line_id(cart.state, customer_id),
            item_name=found.name,
            unit_price=found.price,
            qty=qty,
        )
    ]


def _own_line(cart: Loaded[CartState], line_id: int) -> CartLine:
    line = cart.state.line(line_id)
    if line is None:
        raise LineNotFound(f"line {line_id} is not in your cart")
    return line


def change_quantity(
    cart: Loaded[CartState],
    *,
    customer_id: int,
    line_id: int,
    product: Product | None,
    qty: int,
    limits: HoldingLimits,
    now: datetime,
) -> list[Event]:
    """Raising a quantity needs the units to be available; lowering it always works."""
    line = _own_line(cart, line_id)
    if qty == line.qty:
        return []
    if qty > line.qty:
        _within_limits(qty, _usable(product, line.product_id))
        _orderable(cart.state, qty - line.qty, limits)
    return [
        CartLineQuantityChanged(
            aggregate_id=cart.aggregate_id,
            aggregate_version=cart.version + 1,
            occurred_at=now,
            customer_id=customer_id,
            line_id=line_id,
            product_id=line.product_id,
            qty=qty,
        )
    ]


def remove_line(cart: Loaded[CartState], *, customer_id: int, line_id: int, now: datetime) -> list[Event]:
    line = _own_line(cart, line_id)
    return [
        CartLineRemoved(
            aggregate_id=cart.aggregate_id,
            aggregate_version=cart.version + 1,
            occurred_at=now,
            customer_id=customer_id,
            line_id=line_id,
            product_id=line.product_id,
        )
    ]


@dataclass(frozen=True)
class OrderState:
    order_number: int = 0
    customer_id: int = 0
    status: OrderStatus | None = None
    lines: tuple[OrderLine, ...] = ()
    total: Money | None = None
    payment_due: datetime | None = None
    refund_ids: frozenset[str] = frozenset()
    paid_by: str | None = None  # the intent whose payment the order took

    @property
    def placed(self) -> bool:
        return self.status is not None


@singledispatch
def _apply_order(event: Event, state: OrderState) -> OrderState:
    return state


@_apply_order.register
def _placed(event: OrderPlaced, state: OrderState) -> OrderState:
    return OrderState(event.order_number, event.customer_id, "pending", event.lines, event.total)


@_apply_order.register
def _confirmed(event: OrderConfirmed, state: OrderState) -> OrderState:
    return replace(state, status="confirmed", payment_due=event.payment_due)


@_apply_order.register
def _rejected(event: OrderRejected, state: OrderState) -> OrderState:
    return replace(state, status="rejected")


@_apply_order.register
def _cancelled(event: OrderCancelled, state: OrderState) -> OrderState:
    return replace(state, status="cancelled")


@_apply_order.register
def _paid(event: OrderPaid, state: OrderState) -> OrderState:
    return replace(state, status="paid", paid_by=event.intent_id)


@_apply_order.register
def _refunded(event: OrderRefunded, state: OrderState) -> OrderState:
    return replace(
        state,
        status="refunded" if event.fully else state.status,
        refund_ids=state.refund_ids | {event.refund_id},
    )


@_apply_order.register
def _expired(event: OrderExpired, state: OrderState) -> OrderState:
    return replace(state, status="expired")


def evolve_order(state: OrderState, event: Event) -> OrderState:
    return _apply_order(event, state)


ORDER = AggregateKind[OrderState](
    name="Order", initial=OrderState(), evolve=evolve_order, id_prefix="order-", state_version=2
)


def order_aggregate_id(order_number: int) -> str:
    return ORDER.numbered_id(order_number)


# An order holds its units from being placed until it is paid or ends; no status leads back here.
OPEN_STATUSES: frozenset[str] = frozenset({"pending", "confirmed"})


def _still_open(order: OpenOrder, seen: Mapping[int, OrderState]) -> bool:
    """An order not seen (placed after its customer's orders were read) is open; one seen ended has
    ended for good, so a state read a moment ago may only count an order that just ended as open."""
    state = seen.get(order.order_number)
    return state is None or not state.placed or state.status in OPEN_STATUSES


def _within_holding_limits(
    cart: CartState, seen: Mapping[int, OrderState], limits: HoldingLimits
) -> tuple[int, ...]:
    """Refuses an order over the customer's limits; else the orders the cart counted that have ended."""
    still_open = [order for order in cart.open_orders if _still_open(order, seen)]
    if len(still_open) >= limits.max_open_orders:
        raise TooManyOpenOrders(
            f"you have {len(still_open)} open orders (placed, not yet paid), the most one customer may"
            f" have ({limits.max_open_orders}): pay or cancel one of them to place another"
        )
    held = sum(order.units for order in still_open)
    if held + cart.units > limits.max_held_units:
        raise TooManyUnitsHeld(
            f"your open orders hold {held} units and this order would add {cart.units}; one customer may"
            f" hold at most {limits.max_held_units} units in unpaid orders: pay or cancel an open order,"
            " or order fewer units"
        )
    return tuple(order.order_number for order in cart.open_orders if order not in still_open)


def place_order(
    cart: Loaded[CartState],
    order: Loaded[OrderState],
    *,
    customer_id: int,
    products: Mapping[int, Product],
    orders: Mapping[int, OrderState],
    limits: HoldingLimits,
    now: datetime,
) -> tuple[list[Event], list[Event]]:
    """The cart becomes an order priced at the catalog's current prices, and is emptied, within the
    customer's holding limits. `orders` are the states of the orders the cart counts as open, read
    before this decision; an order the cart counts and `orders` lacks is open."""
    if not cart.state.lines:
        raise CartEmpty("your cart is empty")
    ended_orders = _within_holding_limits(cart.state, orders, limits)
    lines = []
    for line_no, line in enumerate(cart.state.lines, start=1):
        if line.product_id not in products:
            raise CartChanged("the cart changed while the order was being placed; retry")
        product = _usable(products[line.product_id], line.product_id)
        lines.append(
            OrderLine(
                line_no=line_no,
                product_id=line.product_id,
                item_name=product.name,
                qty=line.qty,
                unit_price=product.price,
            )
        )
    currencies = {line.unit_price.currency for line in lines}
    if len(currencies) > 1:
        raise MixedCurrencies(
            f"an order is paid in one currency; the cart holds {', '.join(sorted(currencies))}"
        )
    total = Money(amount=sum((line.amount.amount for line in lines), Decimal(0)), currency=currencies.pop())
    order_number = int(order.aggregate_id.removeprefix("order-"))
    checked_out = CartCheckedOut(
        aggregate_id=cart.aggregate_id,
        aggregate_version=cart.version + 1,
        occurred_at=now,
        customer_id=customer_id,
        order_number=order_number,
        ended_orders=ended_orders,
    )
    placed = OrderPlaced(
        aggregate_id=order.aggregate_id,
        aggregate_version=1,
        occurred_at=now,
        order_number=order_number,
        customer_id=customer_id,
        lines=tuple(lines),
        total=total,
    )
    return [checked_out], [placed]


def _customers_order(order: Loaded[OrderState], customer_id: int | None) -> OrderState:
    """Another customer's order is answered exactly like one that does not exist."""
    state = order.state
    if not state.placed or (customer_id is not None and state.customer_id != customer_id):
        raise OrderNotFound("order not found")
    return state


def _transition(state: OrderState, to: str) -> None:
    if to not in TRANSITIONS.get(state.status or "", frozenset()):
        raise IllegalTransition(f"a {state.status} order cannot become {to}")


ReservationResult = tuple[bool, RejectionReason | None]  # (reserved, why not)
OrderDecision = Callable[[Loaded[OrderState]], list[Event]]


def record_reservations(
    order: Loaded[OrderState],
    *,
    results: Mapping[int, ReservationResult],
    payment_window: timedelta,
    now: datetime,
) -> list[Event]:
    """The saga's report of every line's reservation: all held confirms the order (payment is due
    within the window); any line short rejects it. An order no longer pending decides nothing (a
    repeated report, or the order ended meanwhile: then the saga releases what it holds for it)."""
    state = _customers_order(order, None)
    if state.status != "pending":
        return []
    missing = {line.product_id for line in state.lines} - set(results)
    if missing:
        raise ValueError(f"no reservation result for products {sorted(missing)}")
    envelope = {
        "aggregate_id": order.aggregate_id,
        "aggregate_version": order.version + 1,
        "occurred_at": now,
        "order_number": state.order_number,
    }
    short = [(product_id, reason) for product_id, (reserved, reason) in results.items() if not reserved]
    if short:
        reason: RejectionReason = short[0][1] or "insufficient_stock"
        return [OrderRejected(**envelope, reason=reason, product_ids=tuple(sorted(p for p, _ in short)))]
    return [OrderConfirmed(**envelope, payment_due=now + payment_window)]


def cancel(
    order: Loaded[OrderState], *, customer_id: int | None, reason: CancellationReason, now: datetime
) -> list[Event]:
    """A customer may cancel an order until it is paid, and so does a failed payment (no customer
    then); cancelling twice changes nothing."""
    state = _customers_order(order, customer_id)
    if state.status == "cancelled":
        return []
    _transition(state, "cancelled")
    return [
        OrderCancelled(
            aggregate_id=order.aggregate_id,
            aggregate_version=order.version + 1,
            occurred_at=now,
            order_number=state.order_number,
            reason=reason,
        )
    ]


def expire(order: Loaded[OrderState], *, now: datetime) -> list[Event]:
    """An unpaid confirmed order past its deadline expires; anything else is left as it is."""
    state = _customers_order(order, None)
    if state.status != "confirmed" or state.payment_due is None or now < state.payment_due:
        return []
    return [
        OrderExpired(
            aggregate_id=order.aggregate_id,
            aggregate_version=order.version + 1,
            occurred_at=now,
            order_number=state.order_number,
            payment_due=state.payment_due,
        )
    ]


class PaymentMismatch(OrdersError):
    pass


class PaymentTooLate(OrdersError):
    """The payment succeeded for an order that is no longer waiting for it (it expired or was cancelled)."""


def mark_paid(order: Loaded[OrderState], *, intent_id: str, amount_minor: int, now: datetime) -> list[Event]:
    """The payment succeeded: a confirmed order becomes paid (once, by that payment). A payment the
    order cannot take is refused, and the saga refunds it: the order ended meanwhile (its units were
    released), or another payment paid it already."""
    state = _customers_order(order, None)
    if state.paid_by is not None:
        if state.paid_by == intent_id:
            return []  # the same payment reported again
        raise PaymentTooLate(f"order {state.order_number} is paid already, by another payment")
    if state.status != "confirmed":
        raise PaymentTooLate(f"order {state.order_number} is {state.status}; it can no longer be paid")
    assert state.total is not None
    if amount_minor != minor_units(state.total):
        raise PaymentMismatch(f"the payment ({amount_minor} minor units) is not the order's total")
    return [
        OrderPaid(
            aggregate_id=order.aggregate_id,
            aggregate_version=order.version + 1,
            occurred_at=now,
            order_number=state.order_number,
            intent_id=intent_id,
            amount=state.total,
        )
    ]


def record_refund(
    order: Loaded[OrderState],
    *,
    refund_id: str,
    amount: Money,
    units: tuple[RefundedUnits, ...],
    fully: bool,
    now: datetime,
) -> list[Event]:
    """Money went back for some or all of a paid order, once per refund."""
    state = _customers_order(order, None)
    if refund_id in state.refund_ids:
        return []
    if state.status != "paid":
        raise IllegalTransition(f"a {state.status} order cannot be refunded")
    return [
        OrderRefunded(
            aggregate_id=order.aggregate_id,
            aggregate_version=order.version + 1,
            occurred_at=now,
            order_number=state.order_number,
            refund_id=refund_id,
            amount=amount,
            units=units,
            fully=fully,
        )
    ]
