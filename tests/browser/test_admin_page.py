"""Catalog management and refunds in a real browser, through the edge: an admin creates a product,
edits it, adjusts its stock and deletes it, the storefront shows each change, and the admin refunds a
customer's paid order from the list of every customer's orders."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import SAGA_SECONDS
from tests.support.edge import EdgeProcess
from tests.support.processes import HttpService
from tests.support.purchase import confirmed_order
from tests.support.users_client import bearer, new_email, register, token_for
from tests.support.waiting import eventually


def paid_order(
    users: HttpService, catalog: HttpService, orders: HttpService, payments: HttpService, admin_token: str
) -> int:
    """A customer's order, paid with the simulated gateway's test card (over HTTP, as a shop's client)."""
    email = new_email()
    assert register(users.url, email=email).status_code == 201
    customer = token_for(users.url, email)
    order_number, _ = confirmed_order(orders.url, catalog.url, admin_token, customer)

    # The payments side knows the order once its replica of the orders has it (a fresh deployment's
    # projector may still be creating its tables): until then create-payment answers 503.
    def answered() -> httpx.Response | None:
        body = {"orderNumber": order_number}
        answer = httpx.post(f"{payments.url}/create-payment", json=body, headers=bearer(customer))
        return None if answer.status_code == 503 else answer

    created = eventually(answered, within=SAGA_SECONDS, what=f"order {order_number} payable")
    assert created.status_code == 200, created.text
    payment = created.json()["data"]
    intent = payment["intentId"]
    confirm = {"clientSecret": payment["secret"], "card": "4242 4242 4242 4242"}
    assert httpx.post(
        f"{payments.url}/simulated-gateway/payment_intents/{intent}/confirm", json=confirm
    ).is_success
    assert httpx.post(f"{payments.url}/verify-payment/{intent}", headers=bearer(customer)).is_success

    def paid() -> bool:
        order = httpx.get(f"{orders.url}/orders/{order_number}", headers=bearer(customer)).json()
        return bool(order["status"] == "paid")

    eventually(paid, within=SAGA_SECONDS, what=f"order {order_number} paid")
    return order_number


def log_in_as_admin(tab: Page, edge: EdgeProcess, admin_login: tuple[str, str]) -> None:
    tab.goto(f"{edge.url}/admin/")
    form = tab.get_by_role("form", name="Log in as an admin")
    form.get_by_label("Email").fill(admin_login[0])
    form.get_by_label("Password").fill(admin_login[1])
    form.get_by_role("button", name="Log in").click()
    expect(tab.get_by_role("heading", name="Products", level=2)).to_be_visible()


def test_an_admin_creates_edits_restocks_and_deletes_a_product_and_the_storefront_follows(
    tab: Page, edge: EdgeProcess, admin_login: tuple[str, str]
) -> None:
    name = f"Kettle {uuid.uuid4().hex[:8]}"
    log_in_as_admin(tab, edge, admin_login)

    create = tab.get_by_role("form", name="New product")
    create.get_by_label("Name").fill(name)
    create.get_by_label("Description").fill("Stovetop, two litres")
    create.get_by_label("Price").fill("30.00")
    create.get_by_label("Units in stock").fill("7")
    create.get_by_role("button", name="Create product").click()
    expect(tab.get_by_role("status")).to_contain_text(f": {name}.")
    product_id = re.search(r"Created product (\d+)", tab.get_by_role("status").inner_text())
    assert product_id, tab.get_by_role("status").inner_text()

    tab.get_by_role("button", name=f"Edit {name}").click()
    editor = tab.get_by_role("form", name=f"Edit {name}")
    editor.get_by_label("Name").fill(f"{name} deluxe")
    editor.get_by_label("Price").fill("27.50")
    editor.get_by_role("button", name="Save changes").click()
    expect(tab.get_by_role("status")).to_have_text(f"Saved product {product_id[1]}: {name} deluxe.")

    adjust = tab.get_by_role("form", name=f"Adjust the stock of {name} deluxe")
    adjust.get_by_label("Units to add (negative: remove)").fill("3")
    adjust.get_by_role("button", name="Adjust stock").click()
    expect(tab.get_by_role("status")).to_have_text(f"Stock of {name} deluxe: 10 free, 10 on hand.")
    row = tab.get_by_role("row").filter(has=tab.get_by_role("link", name=f"{name} deluxe"))
    expect(row).to_contain_text("$27.50")

    # The storefront in the same tab: its reads carry the admin's consistency token.
    tab.goto(f"{edge.url}/#/products/{product_id[1]}")
    expect(tab.get_by_role("heading", level=1)).to_have_text(f"{name} deluxe")
    expect(tab.get_by_text("$27.50")).to_be_visible()
    expect(tab.get_by_text("10 in stock")).to_be_visible()

    tab.goto(f"{edge.url}/admin/")
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.get_by_role("button", name=f"Delete {name} deluxe").click()
    expect(tab.get_by_role("status")).to_have_text(f"Deleted product {product_id[1]}: {name} deluxe.")
    tab.goto(f"{edge.url}/#/products/{product_id[1]}")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Product not available")
    expect(tab.get_by_role("alert")).to_contain_text("product not found")


def test_an_admin_sees_every_customers_orders_and_refunds_a_paid_one(
    tab: Page,
    edge: EdgeProcess,
    admin_login: tuple[str, str],
    users_service: HttpService,
    catalog_service: HttpService,
    orders_service: HttpService,
    payments_service: HttpService,
    admin_token: str,
) -> None:
    order_number = paid_order(users_service, catalog_service, orders_service, payments_service, admin_token)
    log_in_as_admin(tab, edge, admin_login)
    # Only the paid orders: the list of a busy shop's orders is long.
    tab.get_by_label("Status").select_option("paid")
    expect(tab.get_by_role("table").get_by_role("cell", name="confirmed", exact=True)).to_have_count(0)

    row = tab.get_by_role("row").filter(has=tab.get_by_role("rowheader", name=f"Order {order_number}"))
    expect(row).to_contain_text("paid")
    expect(row).to_contain_text("$19.99")
    row.get_by_role("button", name=f"Refund order {order_number}").click()
    expect(tab.get_by_role("status")).to_have_text(f"Refunded $19.99 of order {order_number}.")
    # Refunded, it has left the paid orders for the refunded ones.
    expect(row).to_have_count(0, timeout=SAGA_SECONDS * 1000)
    tab.get_by_label("Status").select_option("refunded")
    expect(row).to_contain_text("refunded")
    expect(row.get_by_role("button")).to_have_count(0)
