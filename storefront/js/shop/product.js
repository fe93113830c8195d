/** One product's page, and the pieces the list shares with it: its availability and "add to cart". */

import { request } from "../api.js";
import { el, field } from "../elements.js";
import { formatMoney } from "../money.js";
import { announce } from "../notices.js";

export function availability(product) {
  const text = product.stock > 0 ? `${product.stock} in stock` : "Out of stock";
  return el("p", { class: product.stock > 0 ? "availability" : "availability out" }, text);
}

export async function addToCart(app, product, qty, form = null) {
  const answer = await app.run(
    () => request("POST", "/cart", { token: app.session.token, body: { productId: product.id, qty } }),
    form,
  );
  if (answer) announce(`Added ${qty} × ${product.name} to your cart.`);
}

export function addToCartButton(product, app) {
  if (!app.session.token) return el("p", {}, el("a", { href: "#/account" }, "Log in to buy"));
  return el(
    "button",
    {
      type: "button",
      disabled: product.stock <= 0,
      "aria-label": `Add ${product.name} to the cart`,
      onclick: () => addToCart(app, product, 1),
    },
    "Add to cart",
  );
}

export async function renderProduct(container, productId, app) {
  container.replaceChildren(el("p", {}, "Loading the product…"));
  const answer = await app.load(() => request("GET", `/products/${productId}`));
  if (!answer) {
    container.replaceChildren(el("h1", { tabindex: -1 }, "Product not available"), el("p", {}, el("a", { href: "#/" }, "Back to the products")));
    return;
  }
  const product = answer.data;
  document.title = `${product.name} – Shop`;
  let buy;
  if (!app.session.token) {
    buy = el("p", {}, el("a", { href: "#/account" }, "Log in to buy"));
  } else {
    buy = el(
      "form",
      { class: "inline-form", "aria-label": "Add to cart" },
      field("Quantity", { name: "qty", type: "number", min: 1, max: 1000, value: 1, required: true }),
      el("button", { type: "submit", disabled: product.stock <= 0 }, "Add to cart"),
    );
    buy.addEventListener("submit", (event) => {
      event.preventDefault();
      addToCart(app, product, Number(buy.elements.namedItem("qty").value), buy);
    });
  }
  container.replaceChildren(
    el("p", { class: "breadcrumb" }, el("a", { href: "#/" }, "Products")),
    el(
      "article",
      { class: "product" },
      el("h1", { tabindex: -1 }, product.name),
      el("p", { class: "price" }, formatMoney(product.price, product.currency)),
      availability(product),
      el("p", { class: "description" }, product.description),
      buy,
    ),
  );
}
