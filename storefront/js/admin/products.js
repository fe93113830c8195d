/** Catalog management: create products, edit them (PATCH sends only what changed), adjust stock,
 * delete them; the list (newest first, or searched) reloads after each change. */

import { request } from "../api.js";
import { el, field } from "../elements.js";
import { currencyDecimals, formatMoney } from "../money.js";
import { announce } from "../notices.js";

const PAGE_SIZE = 10;

function wholeNumber(value) {
  return value === "" ? null : Number(value); // a fraction goes to the service, which names the field
}

function priceHint(currency) {
  return currencyDecimals(currency) === 0 ? `A whole amount of ${currency}, e.g. 1999.` : "A decimal with at most two places, e.g. 19.99.";
}

function productFields(product, stockLabel) {
  return [
    field("Name", { name: "name", value: product?.name, required: true, maxlength: 200 }),
    field("Description", { name: "description", value: product?.description, required: true, maxlength: 5000 }, { tag: "textarea" }),
    field("Price", { name: "price", value: product?.price, inputmode: "decimal", required: true, size: 10 }, { hint: priceHint(product?.currency ?? "USD") }),
    field(stockLabel, { name: "stock", type: "number", min: 0, step: 1, value: product?.onHand, required: true }),
  ];
}

export function renderProductsAdmin(section, app) {
  let offset = 0;
  let search = "";
  let total = 0;
  const list = el("div", {}, el("p", {}, "Loading products…"));
  const editor = el("section", { class: "editor", "aria-labelledby": "editor-heading", hidden: true });

  const createForm = el(
    "form",
    { "aria-labelledby": "create-heading" },
    el("fieldset", {}, el("legend", { id: "create-heading" }, "New product"), productFields(null, "Units in stock"), el("button", { type: "submit", class: "primary" }, "Create product")),
  );
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(createForm);
    const body = {
      name: String(data.get("name")),
      description: String(data.get("description")),
      price: String(data.get("price")).trim(),
      stock: wholeNumber(String(data.get("stock"))),
    };
    const created = await app.run(() => request("POST", "/products", { token: app.session.token, body }), createForm);
    if (!created) return;
    createForm.reset();
    offset = 0;
    await load();
    announce(`Created product ${created.data.id}: ${created.data.name}.`);
  });

  const searchForm = el(
    "form",
    { role: "search", "aria-label": "Products", class: "inline-form" },
    field("Find products", { name: "search", type: "search", maxlength: 200 }),
    el("button", { type: "submit" }, "Find"),
  );
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    search = String(new FormData(searchForm).get("search")).trim();
    offset = 0;
    load();
  });

  async function remove(product) {
    if (!window.confirm(`Delete ${product.name}? It can no longer be ordered.`)) return;
    const deleted = await app.run(() => request("DELETE", `/products/${product.id}`, { token: app.session.token }));
    if (!deleted) return;
    if (editor.dataset.productId === String(product.id)) editor.hidden = true;
    await load();
    announce(`Deleted product ${product.id}: ${product.name}.`);
  }

  function edit(product) {
    const form = el(
      "form",
      { "aria-label": `Edit ${product.name}` },
      productFields(product, "Units on hand"),
      el("p", { class: "hint" }, `${product.reserved} of them are held for unpaid orders.`),
      el("button", { type: "submit", class: "primary" }, "Save changes"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const wanted = {
        name: String(data.get("name")),
        description: String(data.get("description")),
        price: String(data.get("price")).trim(),
        stock: wholeNumber(String(data.get("stock"))),
      };
      const current = { name: product.name, description: product.description, price: product.price, stock: product.onHand };
      const body = Object.fromEntries(Object.entries(wanted).filter(([name, value]) => value !== current[name]));
      if (Object.keys(body).length === 0) {
        announce("Nothing changed.");
        return;
      }
      const changed = await app.run(() => request("PATCH", `/products/${product.id}`, { token: app.session.token, body }), form);
      if (!changed) return;
      edit(changed.data);
      await load();
      announce(`Saved product ${product.id}: ${changed.data.name}.`);
    });
    const adjust = el(
      "form",
      { "aria-label": `Adjust the stock of ${product.name}`, class: "inline-form" },
      field("Units to add (negative: remove)", { name: "delta", type: "number", step: 1, required: true }),
      field("Reason", { name: "reason", required: true, maxlength: 200, value: "delivery" }),
      el("button", { type: "submit" }, "Adjust stock"),
    );
    adjust.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(adjust);
      const body = { delta: wholeNumber(String(data.get("delta"))), reason: String(data.get("reason")) };
      const changed = await app.run(
        () => request("POST", `/products/${product.id}/stock-adjustments`, { token: app.session.token, body }),
        adjust,
      );
      if (!changed) return;
      edit(changed.data);
      await load();
      announce(`Stock of ${changed.data.name}: ${changed.data.stock} free, ${changed.data.onHand} on hand.`);
    });
    editor.dataset.productId = String(product.id);
    editor.replaceChildren(
      el("h3", { id: "editor-heading", tabindex: -1 }, `Edit product ${product.id}: ${product.name}`),
      form,
      el("h4", {}, "Stock adjustment"),
      adjust,
      el("button", { type: "button", onclick: () => (editor.hidden = true) }, "Close the editor"),
    );
    editor.hidden = false;
  }

  function row(product) {
    return el(
      "tr",
      {},
      el("td", { class: "number" }, String(product.id)),
      el("th", { scope: "row" }, el("a", { href: `../#/products/${product.id}` }, product.name)),
      el("td", { class: "number" }, formatMoney(product.price, product.currency)),
      el("td", { class: "number" }, String(product.stock)),
      el("td", { class: "number" }, String(product.reserved)),
      el("td", { class: "number" }, String(product.onHand)),
      el(
        "td",
        { class: "actions" },
        el("button", { type: "button", onclick: () => { edit(product); editor.querySelector("h3").focus(); }, "aria-label": `Edit ${product.name}` }, "Edit"),
        el("button", { type: "button", class: "danger", onclick: () => remove(product), "aria-label": `Delete ${product.name}` }, "Delete"),
      ),
    );
  }

  async function load() {
    const answer = await app.load(() =>
      request("GET", "/products", { query: { search, sort: search ? "relevance" : "newest", limit: PAGE_SIZE, offset } }),
    );
    if (!answer) return;
    total = Number(answer.headers.get("X-Total-Count") ?? answer.data.length);
    const page = (to) => () => {
      offset = to;
      load();
    };
    list.replaceChildren(
      el(
        "table",
        {},
        el("caption", {}, `${total} products${search ? ` matching “${search}”` : ", newest first"}`),
        el("thead", {}, el("tr", {}, ["ID", "Name", "Price", "Free", "Held", "On hand", "Actions"].map((name) => el("th", { scope: "col" }, name)))),
        el("tbody", {}, answer.data.map(row)),
      ),
      el(
        "nav",
        { class: "pager", "aria-label": "Pages of products" },
        offset > 0 && el("button", { type: "button", onclick: page(Math.max(0, offset - PAGE_SIZE)) }, "Previous page"),
        offset + answer.data.length < total && el("button", { type: "button", onclick: page(offset + PAGE_SIZE) }, "Next page"),
      ),
    );
  }

  section.replaceChildren(el("h2", { id: "products-heading" }, "Products"), createForm, searchForm, list, editor);
  load();
}
