"""The orders context's read models as pure folds: the catalog replica, carts and orders, and how their
rows read back as the query side's answers."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from psycopg import adapt
from psycopg.types.json import Jsonb

from event_schemas.catalog import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockReleased,
    StockReservationCommitted,
    StockReservationRejected,
    StockReserved,
)
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.orders import (
    CartCheckedOut,
    CartLineAdded,
    CartLineQuantityChanged,
    CartLineRemoved,
    OrderCancelled,
    OrderConfirmed,
    OrderExpired,
    OrderLine,
    OrderPlaced,
    OrderRejected,
)
from projectors.orders import carts, orders, products
from projectors.runtime.projection import Row
from query_api.orders.schemas import CartPublic, CheckoutPublic, OrderPublic
from read_models.orders_replica import ReplicaProduct

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = 7003
ORDER_NUMBER = 4001
CART = {"aggregate_id": f"cart-{CUSTOMER}", "customer_id": CUSTOMER}
ORDER = {"aggregate_id": f"order-{ORDER_NUMBER}", "order_number": ORDER_NUMBER}
MUG = {"aggregate_id": "product-1001", "product_id": 1001}


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def usd(amount: str) -> Money:
    return Money(amount=Decimal(amount))


def line_added(
    version: int, line_id: int, product_id: int, qty: int = 1, price: str = "19.99"
) -> CartLineAdded:
    return CartLineAdded(
        **CART,
        aggregate_version=version,
        occurred_at=at(version),
        line_id=line_id,
        product_id=product_id,
        item_name=f"Product {product_id}",
        unit_price=usd(price),
        qty=qty,
    )


def order_placed() -> OrderPlaced:
    return OrderPlaced(
        **ORDER,
        aggregate_version=1,
        occurred_at=NOW,
        customer_id=CUSTOMER,
        lines=(
            OrderLine(line_no=1, product_id=1001, item_name="Mug", qty=2, unit_price=usd("19.99")),
            OrderLine(line_no=2, product_id=2002, item_name="Pen", qty=1, unit_price=usd("0.50")),
        ),
        total=usd("40.48"),
    )


Fold = Callable[[Mapping[Hashable, Row], Sequence[Event]], dict[Hashable, Row]]


def one_row(fold: Fold, current: Mapping[Hashable, Row], events: Sequence[Event]) -> Row:
    """The row a batch of one aggregate's events leads to."""
    [row] = fold(current, events).values()
    return row


# The catalog replica


def product_created(version: int = 1) -> ProductCreated:
    return ProductCreated(
        **MUG,
        aggregate_version=version,
        occurred_at=NOW,
        name="Mug",
        description="A mug",
        price=usd("19.99"),
        stock=5,
    )


def test_the_replica_keeps_what_an_order_needs_of_a_product() -> None:
    events = [
        product_created(),
        ProductUpdated(**MUG, aggregate_version=2, occurred_at=at(1), name="Big mug", price=usd("9.50")),
        StockReserved(
            **MUG, aggregate_version=3, occurred_at=at(2), order_id="order-4001", quantity=2, stock=3
        ),
    ]
    row = one_row(products.fold, {}, events)
    assert row == {
        "id": 1001,
        "name": "Big mug",
        "price": Decimal("9.50"),
        "currency": "USD",
        "stock": 3,
        "deleted": False,
        "version": 3,
        "updated_at": at(2),
    }
    assert set(row) == set(products.COLUMNS)
    assert products.needs_current(events) == set()


def test_the_replica_stock_is_what_is_free_to_sell_and_a_commitment_leaves_it() -> None:
    current = products.fold({}, [product_created()])
    events = [
        StockReserved(**MUG, aggregate_version=2, occurred_at=at(1), order_id="o-1", quantity=4, stock=1),
        StockReleased(**MUG, aggregate_version=3, occurred_at=at(2), order_id="o-1", quantity=1, stock=2),
        StockReservationCommitted(
            **MUG, aggregate_version=4, occurred_at=at(3), order_id="o-1", quantity=3, stock=2
        ),
    ]
    assert products.needs_current(events) == {1001}
    assert one_row(products.fold, current, events)["stock"] == 2


def test_a_deleted_product_keeps_its_row_marked_deleted() -> None:
    current = products.fold({}, [product_created()])
    row = one_row(products.fold, current, [ProductDeleted(**MUG, aggregate_version=2, occurred_at=at(1))])
    assert (row["deleted"], row["version"], row["updated_at"]) == (True, 2, at(1))


def test_a_rejected_reservation_moves_only_the_replicas_version() -> None:
    current = products.fold({}, [product_created()])
    rejected = StockReservationRejected(
        **MUG,
        aggregate_version=2,
        occurred_at=at(1),
        order_id="o-1",
        quantity=9,
        available=5,
        reason="insufficient_stock",
    )
    row = one_row(products.fold, current, [rejected])
    assert (row["version"], row["stock"], row["updated_at"]) == (2, 5, NOW)


def test_product_events_already_in_the_replica_change_nothing() -> None:
    current = products.fold({}, [product_created()])
    assert products.fold(current, [product_created()]) == {}


# Carts


def test_a_cart_keeps_its_lines_in_the_order_they_were_added() -> None:
    events = [
        line_added(1, 11, 1001),
        line_added(2, 12, 2002, qty=3, price="0.50"),
        line_added(3, 13, 3003),
        CartLineQuantityChanged(
            **CART, aggregate_version=4, occurred_at=at(4), line_id=11, product_id=1001, qty=5
        ),
        CartLineRemoved(**CART, aggregate_version=5, occurred_at=at(5), line_id=13, product_id=3003),
    ]
    row = one_row(carts.fold, {}, events)
    assert (row["customer_id"], row["version"], row["created_at"], row["updated_at"]) == (
        CUSTOMER,
        5,
        at(1),
        at(5),
    )
    assert row["lines"] == [
        {
            "id": 11,
            "productId": 1001,
            "itemName": "Product 1001",
            "qty": 5,
            "price": "19.99",
            "currency": "USD",
            "createdAt": at(1).isoformat(),
            "updatedAt": at(4).isoformat(),
        },
        {
            "id": 12,
            "productId": 2002,
            "itemName": "Product 2002",
            "qty": 3,
            "price": "0.50",
            "currency": "USD",
            "createdAt": at(2).isoformat(),
            "updatedAt": at(2).isoformat(),
        },
    ]
    assert set(row) == set(carts.COLUMNS)


def test_a_checkout_empties_the_cart_and_the_next_line_goes_into_the_same_cart() -> None:
    current = carts.fold({}, [line_added(1, 11, 1001)])
    checked_out = CartCheckedOut(**CART, aggregate_version=2, occurred_at=at(2), order_number=ORDER_NUMBER)
    empty = one_row(carts.fold, current, [checked_out])
    assert (empty["lines"], empty["created_at"], empty["version"]) == ([], at(1), 2)

    again = [line_added(3, 12, 2002)]
    assert carts.needs_current(again) == {CUSTOMER}  # an existing cart: its row is read, not replaced
    row = one_row(carts.fold, {CUSTOMER: empty}, again)
    assert ([line["id"] for line in row["lines"]], row["created_at"]) == ([12], at(1))


def test_a_cart_is_read_first_unless_the_batch_starts_it() -> None:
    assert carts.needs_current([line_added(1, 11, 1001), line_added(2, 12, 2002)]) == set()
    assert carts.needs_current([line_added(2, 12, 2002)]) == {CUSTOMER}


def test_cart_events_already_applied_change_nothing() -> None:
    events = [line_added(1, 11, 1001), line_added(2, 12, 2002)]
    current = carts.fold({}, events)
    assert carts.fold(current, events) == {}
    assert carts.fold(current, [line_added(1, 11, 1001)]) == {}


def test_the_carts_read_model_ignores_order_events() -> None:
    assert carts.needs_current([order_placed()]) == set()
    assert carts.fold({}, [order_placed()]) == {}


def test_jsonb_columns_reach_the_writer_as_json_not_as_arrays() -> None:
    """psycopg sends a plain list as a PostgreSQL array, in an upsert and in COPY alike."""
    [row] = carts.CartsProjection("test").fold({}, [line_added(1, 11, 1001)]).values()
    assert isinstance(row["lines"], Jsonb)
    dumper = adapt.Transformer().get_dumper(row["lines"], adapt.PyFormat.TEXT)
    dumped = dumper.dump(row["lines"])
    assert dumped is not None and bytes(dumped).startswith(b'[{"id": 11')


# Orders


def test_a_placed_order_is_pending_with_its_priced_lines() -> None:
    row = one_row(orders.fold, {}, [order_placed()])
    assert row == {
        "order_number": ORDER_NUMBER,
        "customer_id": CUSTOMER,
        "status": "pending",
        "amount": Decimal("40.48"),
        "currency": "USD",
        "lines": [
            {"lineNo": 1, "productId": 1001, "itemName": "Mug", "qty": 2, "price": "19.99"},
            {"lineNo": 2, "productId": 2002, "itemName": "Pen", "qty": 1, "price": "0.50"},
        ],
        "history": [{"status": "pending", "at": NOW.isoformat(), "reason": None}],
        "reason": None,
        "rejected_product_ids": [],
        "payment_due": None,
        "txn_id": None,
        "refunded_amount": Decimal(0),
        "version": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    assert set(row) == set(orders.COLUMNS)


def test_an_order_records_each_status_it_passes_through() -> None:
    due = at(30)
    events = [
        order_placed(),
        OrderConfirmed(**ORDER, aggregate_version=2, occurred_at=at(1), payment_due=due),
        OrderExpired(**ORDER, aggregate_version=3, occurred_at=at(31), payment_due=due),
    ]
    row = one_row(orders.fold, {}, events)
    assert (row["status"], row["payment_due"], row["reason"], row["updated_at"]) == (
        "expired",
        due,
        None,
        at(31),
    )
    assert [(change["status"], change["at"]) for change in row["history"]] == [
        ("pending", NOW.isoformat()),
        ("confirmed", at(1).isoformat()),
        ("expired", at(31).isoformat()),
    ]


def test_a_rejected_order_says_why_and_which_products() -> None:
    current = orders.fold({}, [order_placed()])
    rejected = OrderRejected(
        **ORDER, aggregate_version=2, occurred_at=at(1), reason="insufficient_stock", product_ids=(1001, 2002)
    )
    assert orders.needs_current([rejected]) == {ORDER_NUMBER}
    row = one_row(orders.fold, current, [rejected])
    assert (row["status"], row["reason"], row["rejected_product_ids"]) == (
        "rejected",
        "insufficient_stock",
        [1001, 2002],
    )
    assert row["history"][-1] == {
        "status": "rejected",
        "at": at(1).isoformat(),
        "reason": "insufficient_stock",
    }


def test_a_cancelled_order_keeps_the_reason() -> None:
    events = [
        order_placed(),
        OrderConfirmed(**ORDER, aggregate_version=2, occurred_at=at(1), payment_due=at(30)),
        OrderCancelled(**ORDER, aggregate_version=3, occurred_at=at(2), reason="customer"),
    ]
    row = one_row(orders.fold, {}, events)
    assert (row["status"], row["reason"], row["payment_due"]) == ("cancelled", "customer", at(30))
    assert [change["reason"] for change in row["history"]] == [None, None, "customer"]


def test_order_events_already_applied_change_nothing() -> None:
    events = [
        order_placed(),
        OrderCancelled(**ORDER, aggregate_version=2, occurred_at=at(1), reason="customer"),
    ]
    current = orders.fold({}, events)
    assert orders.fold(current, events) == {}
    assert orders.fold(current, events[1:]) == {}


def test_the_orders_read_model_ignores_cart_events_and_unknown_orders() -> None:
    assert orders.fold({}, [line_added(1, 11, 1001)]) == {}
    cancelled = OrderCancelled(**ORDER, aggregate_version=2, occurred_at=at(1), reason="customer")
    assert orders.fold({}, [cancelled]) == {}


def test_the_indices_are_named_after_the_table_a_rebuild_fills() -> None:
    customer, placed = orders.OrdersProjection("test").schema("orders__rebuild")[-2:]
    assert customer.as_string() == (
        'CREATE INDEX IF NOT EXISTS "orders__rebuild_customer_idx" ON "orders__rebuild" (customer_id, order_number)'
    )
    assert placed.as_string() == (
        'CREATE INDEX IF NOT EXISTS "orders__rebuild_placed_idx" ON "orders__rebuild"'
        " (created_at DESC, order_number DESC)"
    )


# The rows read back as the query side's answers


def test_a_cart_answers_current_prices_and_availability_from_the_replica() -> None:
    events = [line_added(1, 11, 1001), line_added(2, 12, 2002, price="0.50"), line_added(3, 13, 3003)]
    row = one_row(carts.fold, {}, events)
    replica = {
        1001: ReplicaProduct(1001, "Mug", Decimal("17.00"), "USD", stock=4, deleted=False, version=3),
        2002: ReplicaProduct(2002, "Pen", Decimal("0.75"), "USD", stock=9, deleted=True, version=5),
    }
    answer = CartPublic.from_row(row, replica).model_dump(mode="json")
    assert (answer["id"], answer["customerId"]) == (CUSTOMER, CUSTOMER)
    assert [
        (line["id"], line["price"], line["availability"], line["cartId"]) for line in answer["lineItems"]
    ] == [
        (11, "17.00", 4, CUSTOMER),  # the current price
        (12, "0.50", 0, CUSTOMER),  # deleted: the price it was added at, none to buy
        (13, "19.99", 0, CUSTOMER),  # never heard of
    ]
    assert answer["lineItems"][0]["variant"] is None


def test_an_order_answers_the_seeds_shape_with_amounts_as_strings() -> None:
    row = one_row(orders.fold, {}, [order_placed()])
    answer = OrderPublic.from_row(row).model_dump(mode="json")
    assert (answer["id"], answer["orderNumber"], answer["amount"], answer["status"]) == (
        ORDER_NUMBER,
        ORDER_NUMBER,
        "40.48",
        "pending",
    )
    assert [(line["id"], line["price"], line["orderId"]) for line in answer["lineItems"]] == [
        (ORDER_NUMBER * 1000 + 1, "19.99", ORDER_NUMBER),
        (ORDER_NUMBER * 1000 + 2, "0.50", ORDER_NUMBER),
    ]
    assert answer["statusHistory"] == [{"status": "pending", "at": "2026-01-01T00:00:00Z", "reason": None}]
    checkout = CheckoutPublic.from_row(row).model_dump(mode="json")
    assert (checkout["amount"], checkout["paymentDue"], checkout["customerId"]) == ("40.48", None, CUSTOMER)
