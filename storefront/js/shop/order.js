/** One order: its lines, its status as the saga and the payment move it (polled while it can still
 * change), paying it while it is confirmed, and cancelling it before it is paid. */

import { isUnavailable, request } from "../api.js";
import { el } from "../elements.js";
import { formatMoney, isZero, lineTotal } from "../money.js";
import { announce, showError } from "../notices.js";
import { placedAt, statusLabel } from "./orders.js";
import { renderPayment } from "./payment.js";

const POLL_MS = 1500;
// Statuses the saga or a payment may still move the order out of.
const CHANGING = new Set(["pending", "confirmed"]);
const EXPLAINED = {
  pending: "Its stock is being reserved.",
  confirmed: "Its stock is held for you: pay before the deadline.",
  rejected: "Some products could not be reserved; nothing is held.",
  cancelled: "Cancelled; nothing is held.",
  expired: "Not paid in time; the stock was released.",
  paid: "Paid. Thank you!",
  refunded: "Refunded in full.",
};

function orderSummary(order) {
  const facts = [
    ["Placed", placedAt(order)],
    ["Amount", formatMoney(order.amount, order.currency)],
    order.paymentDue && order.status === "confirmed" && ["Pay by", new Date(order.paymentDue).toLocaleString()],
    !isZero(order.refundedAmount) && ["Refunded", formatMoney(order.refundedAmount, order.currency)],
    order.reason && ["Reason", order.reason],
  ].filter(Boolean);
  return el("dl", { class: "facts" }, facts.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function linesTable(order) {
  return el(
    "table",
    {},
    el("caption", {}, "Lines"),
    el("thead", {}, el("tr", {}, ["Product", "Unit price", "Quantity", "Line total"].map((name) => el("th", { scope: "col" }, name)))),
    el(
      "tbody",
      {},
      order.lineItems.map((line) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, el("a", { href: `#/products/${line.productId}` }, line.itemName)),
          el("td", { class: "number" }, formatMoney(line.price, order.currency)),
          el("td", { class: "number" }, String(line.qty)),
          el("td", { class: "number" }, formatMoney(lineTotal(line.price, line.qty), order.currency)),
        ),
      ),
    ),
  );
}

function history(order) {
  return el(
    "section",
    { "aria-labelledby": "history-heading" },
    el("h2", { id: "history-heading" }, "History"),
    el("ol", { class: "history" }, order.statusHistory.map((change) => el("li", {}, statusLabel(change.status), ` ${new Date(change.at).toLocaleString()}`))),
  );
}

export async function renderOrder(container, orderNumber, app) {
  document.title = `Order ${orderNumber} – Shop`;
  if (!app.session.token) {
    container.replaceChildren(el("h1", { tabindex: -1 }, `Order ${orderNumber}`), el("p", {}, el("a", { href: "#/account" }, "Log in"), " to see it."));
    return undefined;
  }
  const status = el("p", { class: "order-now", "aria-live": "polite" });
  const details = el("div");
  const payment = el("section", { "aria-labelledby": "payment-heading", hidden: true });
  const actions = el("div", { class: "actions" });
  container.replaceChildren(
    el("p", { class: "breadcrumb" }, el("a", { href: "#/orders" }, "Your orders")),
    el("h1", { tabindex: -1 }, `Order ${orderNumber}`),
    status,
    details,
    payment,
    actions,
  );
  let left = false;
  let timer = null;
  let shownStatus = null;

  async function cancel() {
    const cancelled = await app.run(() => request("POST", `/orders/${orderNumber}/cancel`, { token: app.session.token }));
    if (cancelled) announce(`Order ${orderNumber} is being cancelled.`);
    await load();
  }

  function show(order) {
    if (order.status !== shownStatus) {
      shownStatus = order.status;
      status.replaceChildren("Status: ", statusLabel(order.status), ` ${EXPLAINED[order.status] ?? ""}`);
      actions.replaceChildren(
        CHANGING.has(order.status) && el("button", { type: "button", onclick: cancel }, "Cancel the order"),
      );
      if (order.status === "confirmed") {
        renderPayment(payment, order, app);
        payment.hidden = false;
      } else {
        payment.hidden = true;
        payment.replaceChildren();
      }
    }
    details.replaceChildren(orderSummary(order), linesTable(order), history(order));
  }

  // Not through app.load: after a failure, whether to poll on depends on the kind of failure.
  async function load() {
    clearTimeout(timer);
    let order = null;
    let retry = false;
    try {
      order = (await request("GET", `/orders/${orderNumber}`, { token: app.session.token })).data;
    } catch (error) {
      if (left) return;
      retry = isUnavailable(error); // an outage passes: keep polling
      showError(error);
    }
    if (left) return;
    if (order) show(order);
    if (retry || (order && CHANGING.has(order.status))) timer = setTimeout(load, POLL_MS);
  }

  await load();
  return () => {
    left = true;
    clearTimeout(timer);
  };
}
