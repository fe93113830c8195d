"""Given events, when a command, then events: the Product aggregate's rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from command_api.catalog import domain
from command_api.catalog.commands import CreateProduct, UpdateProduct
from command_api.catalog.domain import PRODUCT, ProductState
from command_api.eventstore.model import Loaded
from command_api.orders import app as orders_app
from command_api.payments import app as payments_app
from event_schemas.catalog import (
    ProductCreated,
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from event_schemas.envelope import Event
from event_schemas.money import AmountNotInCurrency, Money, minor_units
from web import json_numbers
from web.errors import install_error_handlers

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def given(*decisions: object) -> Loaded[ProductState]:
    """A product 3003 after the events its decisions produced."""
    loaded = Loaded("product-3003", PRODUCT.initial, 0, 0)
    for decide in decisions:
        events: Sequence[Event] = decide(loaded)  # type: ignore[operator]
        state = loaded.state
        for event in events:
            state = PRODUCT.evolve(state, event)
        loaded = Loaded(loaded.aggregate_id, state, loaded.version + len(events), 0)
    return loaded


def created(stock: int = 10) -> object:
    return lambda p: domain.create(
        p, name="Mug", description="A mug", price=Money(amount=Decimal("19.99")), stock=stock, now=NOW
    )


def test_a_created_product_takes_the_number_of_its_aggregate() -> None:
    product = given(created())
    assert (product.state.product_id, product.state.stock, product.state.price) == (
        3003,
        10,
        Money(amount=Decimal("19.99")),
    )


def test_an_update_records_only_what_changed() -> None:
    [event] = domain.update(
        given(created()), name="Mug", description="A big mug", price=None, stock=None, now=NOW
    )
    assert isinstance(event, ProductUpdated)
    assert (event.name, event.description, event.price) == (None, "A big mug", None)


def test_an_update_that_changes_nothing_appends_nothing() -> None:
    assert domain.update(given(created()), name="Mug", description=None, price=None, stock=10, now=NOW) == []


def test_setting_the_stock_in_an_update_is_a_stock_adjustment() -> None:
    [event] = domain.update(given(created(10)), name=None, description=None, price=None, stock=4, now=NOW)
    assert isinstance(event, StockAdjusted)
    assert (event.delta, event.stock) == (-6, 4)


def test_a_deleted_product_cannot_be_changed_deleted_again_or_restocked() -> None:
    deleted = given(created(), lambda p: domain.delete(p, NOW))
    with pytest.raises(domain.ProductNotFound):
        domain.update(deleted, name="X", description=None, price=None, stock=None, now=NOW)
    with pytest.raises(domain.ProductNotFound):
        domain.delete(deleted, NOW)
    with pytest.raises(domain.ProductNotFound):
        domain.adjust_stock(deleted, delta=5, reason="restock", now=NOW)


def test_stock_never_goes_below_zero() -> None:
    with pytest.raises(domain.InsufficientStock):
        domain.adjust_stock(given(created(3)), delta=-4, reason="breakage", now=NOW)


def test_a_reservation_holds_units_once_per_order() -> None:
    reserved = given(created(10), lambda p: domain.reserve_stock(p, order_id="o-1", quantity=4, now=NOW))
    assert reserved.state.stock == 6
    assert domain.reserve_stock(reserved, order_id="o-1", quantity=4, now=NOW) == []


def test_a_reservation_beyond_the_stock_is_rejected_and_holds_nothing() -> None:
    [event] = domain.reserve_stock(given(created(3)), order_id="o-1", quantity=4, now=NOW)
    assert isinstance(event, StockReservationRejected)
    assert (event.reason, event.available) == ("insufficient_stock", 3)


def test_a_reservation_for_a_deleted_product_is_rejected() -> None:
    deleted = given(created(), lambda p: domain.delete(p, NOW))
    [event] = domain.reserve_stock(deleted, order_id="o-1", quantity=1, now=NOW)
    assert isinstance(event, StockReservationRejected) and event.reason == "product_unavailable"


def test_a_release_gives_back_exactly_what_was_reserved_and_only_once() -> None:
    reserved = given(created(10), lambda p: domain.reserve_stock(p, order_id="o-1", quantity=4, now=NOW))
    [event] = domain.release_stock(reserved, order_id="o-1", now=NOW)
    assert isinstance(event, StockReleased) and (event.quantity, event.stock) == (4, 10)
    released = given(
        created(10),
        lambda p: domain.reserve_stock(p, order_id="o-1", quantity=4, now=NOW),
        lambda p: domain.release_stock(p, order_id="o-1", now=NOW),
    )
    assert domain.release_stock(released, order_id="o-1", now=NOW) == []
    assert domain.release_stock(released, order_id="never-reserved", now=NOW) == []
    assert domain.reserve_stock(released, order_id="o-1", quantity=1, now=NOW) == []


def test_two_orders_cannot_be_promised_the_same_last_unit() -> None:
    one_left = given(created(1), lambda p: domain.reserve_stock(p, order_id="o-1", quantity=1, now=NOW))
    [event] = domain.reserve_stock(one_left, order_id="o-2", quantity=1, now=NOW)
    assert isinstance(event, StockReservationRejected)
    assert not isinstance(event, StockReserved)


def reserve(order_id: str, quantity: int, now: datetime = NOW) -> object:
    return lambda p: domain.reserve_stock(p, order_id=order_id, quantity=quantity, now=now)


def test_a_repeated_reservation_decides_nothing_and_keeps_its_first_outcome() -> None:
    held = given(created(stock=5), reserve("order-1", 3))
    assert domain.reserve_stock(held, order_id="order-1", quantity=3, now=NOW) == []
    assert held.state.outcomes["order-1"].reserved
    short = given(created(stock=1), reserve("order-2", 3))
    assert domain.reserve_stock(short, order_id="order-2", quantity=1, now=NOW) == []  # not held now either
    assert short.state.outcomes["order-2"].reason == "insufficient_stock"


def test_a_paid_reservation_leaves_stock_on_hand_once_and_free_stock_unchanged() -> None:
    product = given(
        created(stock=5),
        reserve("order-1", 2),
        lambda p: domain.commit_reservation(p, order_id="order-1", now=NOW),
    )
    assert (product.state.stock, product.state.reserved, product.state.on_hand) == (3, 0, 3)
    assert domain.commit_reservation(product, order_id="order-1", now=NOW) == []
    assert domain.release_stock(product, order_id="order-1", now=NOW) == []


def test_an_absolute_stock_update_counts_units_on_hand_and_keeps_what_orders_hold() -> None:
    product = given(created(stock=10), reserve("order-1", 3))
    assert (product.state.stock, product.state.on_hand) == (7, 10)
    counted = given(
        created(stock=10),
        reserve("order-1", 3),
        lambda p: domain.update(p, name=None, description=None, price=None, stock=12, now=NOW),
    )
    assert (counted.state.stock, counted.state.reserved, counted.state.on_hand) == (9, 3, 12)
    with pytest.raises(domain.InsufficientStock):
        domain.update(product, name=None, description=None, price=None, stock=2, now=NOW)


def test_settled_outcomes_are_forgotten_after_the_window_but_held_ones_are_kept() -> None:
    later = NOW + domain.OUTCOME_WINDOW + timedelta(minutes=1)
    product = given(
        created(stock=10),
        reserve("order-held", 1),
        reserve("order-released", 1),
        lambda p: domain.release_stock(p, order_id="order-released", now=NOW),
        reserve("order-new", 1, now=later),
    )
    assert set(product.state.outcomes) == {"order-held", "order-new"}
    assert product.state.held == {"order-held": 1, "order-new": 1}


# Prices (issue 17, finding 9): ASCII digits with at most two decimals, as a string or a JSON number
# written that way, and never finer than the currency's smallest unit.


def product_request(price: object, **fields: object) -> dict[str, object]:
    return {"name": "Mug", "description": "A mug", "price": price, "stock": 1} | fields


def body_number(literal: str) -> object:
    """A price as a JSON number, read the way the catalog's routes read their bodies."""
    body: dict[str, object] = json_numbers.loads('{"price": ' + literal + "}")
    return body["price"]


BAD_PRICE_TEXTS = [
    "1e2",
    "1E2",
    "1_000",
    "\u0661\u0660\u0660",  # Arabic-Indic digits: 100
    "\u0661\u066b\u0665",  # and with the Arabic decimal separator
    "\uff11\uff10",  # fullwidth digits
    " 9.99",
    "9.99 ",
    "9.99\n",
    "+5",
    ".5",
    "5.",
    "-5",
    "19.999",
    "19.990",
    "1,5",
    "Infinity",
    "NaN",
    "",
]


@pytest.mark.parametrize("text", BAD_PRICE_TEXTS)
def test_a_price_string_other_than_ascii_digits_with_two_decimals_is_refused(text: str) -> None:
    for model in (CreateProduct, UpdateProduct):
        with pytest.raises(ValidationError) as refused:
            model.model_validate(product_request(text))
        assert [error["loc"] for error in refused.value.errors()] == [("price",)]


@pytest.mark.parametrize(
    "literal", ["1e2", "1E+2", "1.5e1", "19.990", "1999e-2", "-5", "NaN", "1e99999999999999999999999999999"]
)
def test_a_price_as_a_json_number_is_judged_by_its_text(literal: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CreateProduct.model_validate(product_request(body_number(literal)))
    assert [error["loc"] for error in refused.value.errors()] == [("price",)]


@pytest.mark.parametrize("price", [19.99, 100.0, True])
def test_a_float_or_a_boolean_is_never_a_price(price: object) -> None:
    with pytest.raises(ValidationError, match="price"):
        CreateProduct.model_validate(product_request(price))


@pytest.mark.parametrize(
    ("price", "exactly"),
    [
        ("9.99", Decimal("9.99")),
        ("0.5", Decimal("0.5")),
        ("5", Decimal(5)),
        (5, Decimal(5)),
        (body_number("19.99"), Decimal("19.99")),
        (body_number("0.10"), Decimal("0.10")),
        (body_number("100"), Decimal(100)),
    ],
)
def test_digits_with_at_most_two_decimals_are_the_exact_price(price: object, exactly: Decimal) -> None:
    parsed = CreateProduct.model_validate(product_request(price)).price
    assert parsed == exactly and type(parsed) is Decimal
    assert UpdateProduct.model_validate({"price": price}).price == exactly


def test_a_json_number_in_a_body_is_never_a_float() -> None:
    body = json_numbers.loads(b'{"a": 0.1, "b": 1e400, "c": NaN, "d": 7}')
    assert [type(value) for value in body.values()] == [json_numbers.NumberText] * 3 + [int]
    assert body["a"] == Decimal("0.1") and body["a"].text == "0.1"
    assert body["b"].text == "1e400"


def test_a_zero_decimal_currency_takes_whole_prices_only() -> None:
    with pytest.raises(ValidationError) as refused:
        CreateProduct.model_validate(product_request("19.99", currency="JPY"))
    [error] = refused.value.errors()
    assert (error["loc"], error["type"]) == (("price",), "amount_not_in_currency")
    assert "JPY takes whole amounts only" in error["msg"]
    with pytest.raises(ValidationError, match="JPY takes whole amounts only"):
        CreateProduct.model_validate(product_request(body_number("19.5"), currency="JPY"))
    assert CreateProduct.model_validate(product_request("1999", currency="JPY")).price == Decimal(1999)
    assert CreateProduct.model_validate(product_request("19.99", currency="USD")).price == Decimal("19.99")


def jpy(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="JPY")


def test_a_product_is_never_created_at_a_price_its_currency_cannot_hold() -> None:
    fresh = given()
    with pytest.raises(domain.PriceNotInCurrency, match="JPY takes whole amounts only") as refused:
        domain.create(fresh, name="Tea", description="Green", price=jpy("19.99"), stock=1, now=NOW)
    assert refused.value.field == "price"
    [event] = domain.create(fresh, name="Tea", description="Green", price=jpy("1999"), stock=1, now=NOW)
    assert isinstance(event, ProductCreated) and event.price == jpy("1999")


def test_a_price_update_its_currency_cannot_hold_is_refused() -> None:
    tea = given(
        lambda p: domain.create(p, name="Tea", description="Green", price=jpy("1999"), stock=1, now=NOW)
    )
    with pytest.raises(domain.PriceNotInCurrency):
        domain.update(tea, name=None, description=None, price=jpy("19.99"), stock=None, now=NOW)
    [event] = domain.update(tea, name=None, description=None, price=jpy("2500"), stock=None, now=NOW)
    assert isinstance(event, ProductUpdated) and event.price == jpy("2500")


def test_minor_units_refuse_an_amount_the_currency_cannot_hold_with_a_domain_error() -> None:
    assert minor_units(jpy("1999.00")) == 1999
    with pytest.raises(
        AmountNotInCurrency, match=re.escape("19.99 is not an amount of JPY: JPY takes whole amounts only")
    ):
        minor_units(jpy("19.99"))


@pytest.mark.parametrize("context", ["payments", "orders"])
def test_an_amount_its_currency_cannot_hold_is_answered_409_by_payments_and_orders_never_500(
    context: str,
) -> None:
    """Such an order total predates the catalog's check: paying it is refused, with the reason."""
    app = FastAPI()
    errors = {"payments": payments_app.DOMAIN_ERRORS, "orders": orders_app.DOMAIN_ERRORS}[context]
    install_error_handlers(app, errors)

    @app.post("/create-payment")
    async def create_payment() -> int:
        return minor_units(jpy("19.99"))

    response = TestClient(app).post("/create-payment")
    assert response.status_code == 409, response.text
    assert response.json() == {
        "message": "19.99 is not an amount of JPY: JPY takes whole amounts only",
        "error": "amount_not_in_currency",
    }
