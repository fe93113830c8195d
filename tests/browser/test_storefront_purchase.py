"""A customer's whole purchase in a real browser, through the edge: register, search, fill the cart,
order, pay with the simulated gateway's test card, and watch the order become paid."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.browser.conftest import SAGA_SECONDS
from tests.support.catalog_client import created, list_products
from tests.support.edge import EdgeProcess
from tests.support.processes import HttpService


def test_a_customer_registers_searches_orders_pays_and_sees_the_order_paid(
    tab: Page, edge: EdgeProcess, catalog_service: HttpService, admin_token: str
) -> None:
    word = uuid.uuid4().hex[:10]
    name = f"Teapot {word}"
    product, token = created(catalog_service.url, admin_token, name=name, price="24.50", stock=5)
    # With the creation's token the search index is refreshed: the product is searchable from now on.
    assert list_products(catalog_service.url, consistency=token, search=word).json(), "not searchable"

    tab.goto(f"{edge.url}/#/account")
    register = tab.get_by_role("form", name="Register")
    register.get_by_label("User name").fill("shopper")
    register.get_by_label("Email").fill(f"shopper-{word}@example.com")
    register.get_by_label("Password").fill("correct horse battery")
    register.get_by_role("button", name="Register").click()
    expect(tab.get_by_role("status")).to_contain_text(f"Signed in as shopper-{word}@example.com")

    search = tab.get_by_role("search", name="Products")
    search.get_by_label("Search").fill(word)
    search.get_by_role("button", name="Show products").click()
    expect(tab).to_have_url(re.compile(rf"#/\?search={word}$"))
    expect(tab.get_by_text("Showing 1\u20131 of 1 products.")).to_be_visible()
    card = tab.get_by_role("article").filter(has=tab.get_by_role("heading", name=name))
    expect(card).to_contain_text("$24.50")
    expect(card).to_contain_text("5 in stock")
    card.get_by_role("button", name=f"Add {name} to the cart").click()
    expect(tab.get_by_role("status")).to_have_text(f"Added 1 \u00d7 {name} to your cart.")

    menu = tab.get_by_role("navigation", name="Main")
    menu.get_by_role("link", name="Cart").click()
    quantity = tab.get_by_role("form", name=f"Quantity of {name}")
    quantity.get_by_label(f"Quantity of {name}").fill("2")
    quantity.get_by_role("button", name="Update").click()
    expect(tab.locator("tfoot")).to_contain_text("$49.00")  # summed in cents, in the page
    tab.get_by_role("button", name="Place order").click()

    expect(tab).to_have_url(re.compile(r"#/orders/\d+$"))
    order_number = tab.url.rsplit("/", 1)[1]
    expect(tab.get_by_role("heading", level=1)).to_have_text(f"Order {order_number}")
    status = tab.locator(".order-now")
    expect(status).to_contain_text("confirmed", timeout=SAGA_SECONDS * 1000)

    tab.get_by_role("button", name="Pay $49.00").click()
    card_form = tab.get_by_role("form", name="Card")
    expect(card_form.get_by_label("Card number")).to_have_value("4242 4242 4242 4242")
    card_form.get_by_role("button", name="Pay $49.00").click()
    expect(tab.get_by_role("status")).to_contain_text("Payment succeeded")
    expect(status).to_contain_text("paid", timeout=SAGA_SECONDS * 1000)  # the page polls the order

    menu.get_by_role("link", name="Orders").click()
    row = tab.get_by_role("row").filter(has=tab.get_by_role("link", name=f"Order {order_number}"))
    expect(row).to_contain_text("paid")
    expect(row).to_contain_text("$49.00")

    tab.goto(f"{edge.url}/#/products/{product['id']}")
    expect(tab.get_by_text("3 in stock")).to_be_visible()  # the paid units left stock for good
