/** Every customer's orders (`GET /orders?scope=all`, newest first) and refunds of paid ones. */

import { request } from "../api.js";
import { el, field } from "../elements.js";
import { formatMoney, fromMinorUnits, isZero } from "../money.js";
import { announce } from "../notices.js";

const PAGE_SIZE = 20;
const POLL_MS = 1000;
const REFUND_POLLS = 15; // the saga records a refund on the order within a second or two

const STATUSES = [
  ["", "Any status"],
  ...["pending", "confirmed", "paid", "refunded", "rejected", "cancelled", "expired"].map((status) => [status, status]),
];

export function renderOrdersAdmin(section, app) {
  let offset = 0;
  let status = "";
  const list = el("div", {}, el("p", {}, "Loading orders…"));

  async function fetchPage() {
    const query = { scope: "all", status, limit: PAGE_SIZE, offset };
    return (await request("GET", "/orders", { token: app.session.token, query })).data;
  }

  async function refund(order) {
    const refunded = await app.run(() =>
      request("POST", "/refunds", { token: app.session.token, body: { orderNumber: order.orderNumber } }),
    );
    if (!refunded) return;
    const { amount, currency } = refunded.data;
    announce(`Refunded ${formatMoney(fromMinorUnits(amount, currency), currency)} of order ${order.orderNumber}.`);
    // The order shows the refund once the saga has recorded it: follow it for a moment.
    for (let poll = 0; poll < REFUND_POLLS; poll += 1) {
      const orders = await app.load(fetchPage);
      if (!orders) return;
      show(orders);
      const now = orders.find((candidate) => candidate.orderNumber === order.orderNumber);
      if (!now || now.refundedAmount !== order.refundedAmount) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function row(order) {
    const refundable = order.status === "paid";
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, `Order ${order.orderNumber}`),
      el("td", { class: "number" }, String(order.customerId)),
      el("td", {}, new Date(order.createdAt).toLocaleString()),
      el("td", {}, el("span", { class: `order-status status-${order.status}` }, order.status)),
      el("td", { class: "number" }, formatMoney(order.amount, order.currency)),
      el("td", { class: "number" }, isZero(order.refundedAmount) ? "—" : formatMoney(order.refundedAmount, order.currency)),
      el("td", {}, order.lineItems.map((line) => `${line.qty} × ${line.itemName}`).join(", ")),
      el(
        "td",
        {},
        refundable &&
          el("button", { type: "button", class: "danger", onclick: () => refund(order), "aria-label": `Refund order ${order.orderNumber}` }, "Refund"),
      ),
    );
  }

  function show(orders) {
    const page = (to) => () => {
      offset = to;
      load();
    };
    list.replaceChildren(
      orders.length === 0
        ? el("p", {}, "No orders.")
        : el(
            "table",
            {},
            el("caption", {}, "Every customer's orders, newest first"),
            el("thead", {}, el("tr", {}, ["Order", "Customer", "Placed", "Status", "Amount", "Refunded", "Lines", "Actions"].map((name) => el("th", { scope: "col" }, name)))),
            el("tbody", {}, orders.map(row)),
          ),
      el(
        "nav",
        { class: "pager", "aria-label": "Pages of orders" },
        offset > 0 && el("button", { type: "button", onclick: page(Math.max(0, offset - PAGE_SIZE)) }, "Newer orders"),
        orders.length === PAGE_SIZE && el("button", { type: "button", onclick: page(offset + PAGE_SIZE) }, "Older orders"),
      ),
    );
  }

  async function load() {
    const orders = await app.load(fetchPage);
    if (orders) show(orders);
  }

  const statusFilter = field("Status", { name: "status", value: status }, { tag: "select", options: STATUSES });
  statusFilter.querySelector("select").addEventListener("change", (event) => {
    status = event.target.value;
    offset = 0;
    load();
  });
  section.replaceChildren(
    el("h2", { id: "orders-heading" }, "Orders"),
    el("div", { class: "filters" }, statusFilter, el("button", { type: "button", onclick: load }, "Refresh the orders")),
    list,
  );
  load();
}
