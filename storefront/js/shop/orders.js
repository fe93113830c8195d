/** The customer's orders, newest first, a page at a time. */

import { request } from "../api.js";
import { el } from "../elements.js";
import { formatMoney } from "../money.js";

const PAGE_SIZE = 20;

export function statusLabel(status) {
  return el("span", { class: `order-status status-${status}` }, status);
}

export function placedAt(order) {
  return new Date(order.createdAt).toLocaleString();
}

export async function renderOrders(container, query, app) {
  document.title = "Orders – Shop";
  if (!app.session.token) {
    container.replaceChildren(el("h1", { tabindex: -1 }, "Orders"), el("p", {}, el("a", { href: "#/account" }, "Log in"), " to see your orders."));
    return;
  }
  const offset = Math.max(0, Number.parseInt(query.get("offset") ?? "0", 10) || 0);
  const list = el("div", {}, el("p", {}, "Loading your orders…"));
  container.replaceChildren(el("h1", { tabindex: -1 }, "Your orders"), list);
  const answer = await app.load(() =>
    request("GET", "/orders", { token: app.session.token, query: { limit: PAGE_SIZE, offset } }),
  );
  if (!answer) return;
  const orders = answer.data;
  if (orders.length === 0 && offset === 0) {
    list.replaceChildren(el("p", {}, "No orders yet. ", el("a", { href: "#/" }, "Browse the products.")));
    return;
  }
  list.replaceChildren(
    el(
      "table",
      {},
      el("caption", { class: "visually-hidden" }, "Your orders"),
      el("thead", {}, el("tr", {}, ["Order", "Placed", "Status", "Amount"].map((name) => el("th", { scope: "col" }, name)))),
      el(
        "tbody",
        {},
        orders.map((order) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, el("a", { href: `#/orders/${order.orderNumber}` }, `Order ${order.orderNumber}`)),
            el("td", {}, placedAt(order)),
            el("td", {}, statusLabel(order.status)),
            el("td", { class: "number" }, formatMoney(order.amount, order.currency)),
          ),
        ),
      ),
    ),
    el(
      "nav",
      { class: "pager", "aria-label": "Pages of orders" },
      offset > 0 && el("a", { href: `#/orders?offset=${Math.max(0, offset - PAGE_SIZE)}`, rel: "prev" }, "Newer orders"),
      orders.length === PAGE_SIZE && el("a", { href: `#/orders?offset=${offset + PAGE_SIZE}`, rel: "next" }, "Older orders"),
    ),
  );
}
