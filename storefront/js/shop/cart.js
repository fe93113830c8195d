/** The cart: each line at the product's current price, quantities changed or removed, and the order
 * placed. The API gives no cart total, so it is summed here, in cents. */

import { isUnavailable, newIdempotencyKey, request } from "../api.js";
import { el, field } from "../elements.js";
import { formatMoney, lineTotal, sumAmounts } from "../money.js";
import { announce } from "../notices.js";

function lineRow(line, app, refresh) {
  const qtyForm = el(
    "form",
    { class: "inline-form", "aria-label": `Quantity of ${line.itemName}` },
    field(`Quantity of ${line.itemName}`, { name: "qty", type: "number", min: 1, max: 1000, value: line.qty, required: true }),
    el("button", { type: "submit" }, "Update"),
  );
  qtyForm.querySelector("label").classList.add("visually-hidden");
  qtyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const qty = Number(qtyForm.elements.namedItem("qty").value);
    const body = { qty };
    const changed = await app.run(() => request("PATCH", `/cart/${line.id}`, { token: app.session.token, body }), qtyForm);
    if (changed) {
      await refresh();
      announce(`${line.itemName}: quantity ${qty}.`);
    }
  });
  const remove = async () => {
    const removed = await app.run(() => request("DELETE", `/cart/${line.id}`, { token: app.session.token }));
    if (removed) {
      await refresh();
      announce(`Removed ${line.itemName} from your cart.`);
    }
  };
  return el(
    "tr",
    {},
    el("th", { scope: "row" }, el("a", { href: `#/products/${line.productId}` }, line.itemName)),
    el("td", { class: "number" }, formatMoney(line.price, line.currency)),
    el("td", {}, qtyForm),
    el("td", { class: "number" }, line.availability > 0 ? String(line.availability) : "None left"),
    el("td", { class: "number" }, formatMoney(lineTotal(line.price, line.qty), line.currency)),
    el("td", {}, el("button", { type: "button", onclick: remove, "aria-label": `Remove ${line.itemName}` }, "Remove")),
  );
}

export async function renderCart(container, app) {
  document.title = "Cart – Shop";
  if (!app.session.token) {
    container.replaceChildren(el("h1", { tabindex: -1 }, "Cart"), el("p", {}, el("a", { href: "#/account" }, "Log in"), " to fill a cart."));
    return;
  }
  // Kept until the service answers: placing the order again after a lost answer is the same order.
  let placeKey = newIdempotencyKey();
  const body = el("div", {}, el("p", {}, "Loading your cart…"));
  container.replaceChildren(el("h1", { tabindex: -1 }, "Cart"), body);

  async function placeOrder(button) {
    button.disabled = true;
    const placed = await app.run(async () => {
      try {
        return await request("POST", "/orders", { token: app.session.token, idempotencyKey: placeKey });
      } catch (error) {
        if (!isUnavailable(error)) placeKey = newIdempotencyKey(); // refused for good: a retry is a new command
        throw error;
      }
    });
    button.disabled = false;
    if (placed) {
      placeKey = newIdempotencyKey();
      app.navigate(`#/orders/${placed.data.orderNumber}`, `Order ${placed.data.orderNumber} placed.`);
    }
  }

  async function refresh() {
    let cart;
    try {
      cart = (await request("GET", "/cart", { token: app.session.token })).data;
    } catch (error) {
      if (error.status !== 404) throw error;
      cart = { lineItems: [] }; // a customer who never added a line has no cart yet
    }
    const lines = cart.lineItems;
    if (lines.length === 0) {
      body.replaceChildren(el("p", {}, "Your cart is empty. ", el("a", { href: "#/" }, "Browse the products.")));
      return;
    }
    const currency = lines[0].currency;
    const oneCurrency = lines.every((line) => line.currency === currency);
    const total = oneCurrency ? formatMoney(sumAmounts(lines.map((line) => lineTotal(line.price, line.qty))), currency) : "—";
    const place = el("button", { type: "button", class: "primary", onclick: () => placeOrder(place) }, "Place order");
    body.replaceChildren(
      el(
        "table",
        { class: "cart" },
        el("caption", { class: "visually-hidden" }, "Lines of your cart"),
        el(
          "thead",
          {},
          el("tr", {}, ["Product", "Unit price", "Quantity", "Available", "Line total", ""].map((name) => el("th", { scope: "col" }, name))),
        ),
        el("tbody", {}, lines.map((line) => lineRow(line, app, () => app.load(refresh)))),
        el("tfoot", {}, el("tr", {}, el("th", { scope: "row", colspan: 4 }, "Total"), el("td", { class: "number total" }, total), el("td"))),
      ),
      el("p", { class: "hint" }, "Prices are the products' current prices; the order fixes them when it is placed."),
      place,
    );
  }

  await app.load(refresh);
}
