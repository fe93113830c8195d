/** The product list: search, price and stock filters, sorting and paging, all kept in the URL
 * (`#/?search=...&offset=...`) so the back button and a shared link show the same page. */

import { request } from "../api.js";
import { el, field } from "../elements.js";
import { formatMoney } from "../money.js";
import { addToCartButton, availability } from "./product.js";

const PAGE_SIZE = 12;
const SORTS = [
  ["", "Default"],
  ["relevance", "Relevance"],
  ["newest", "Newest"],
  ["name", "Name"],
  ["price_asc", "Price, low to high"],
  ["price_desc", "Price, high to low"],
];
const FILTERS = ["search", "min_price", "max_price", "in_stock", "sort"];

function listHash(filters, offset) {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) query.set(name, filters[name]);
  if (offset > 0) query.set("offset", String(offset));
  const text = query.toString();
  return text ? `#/?${text}` : "#/";
}

function filtersForm(filters, app) {
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Products" },
    field("Search", { name: "search", type: "search", value: filters.search, maxlength: 200 }),
    field("Lowest price", { name: "min_price", inputmode: "decimal", value: filters.min_price, size: 8 }),
    field("Highest price", { name: "max_price", inputmode: "decimal", value: filters.max_price, size: 8 }),
    field("Sort by", { name: "sort", value: filters.sort ?? "" }, { tag: "select", options: SORTS }),
    field("In stock only", { name: "in_stock", type: "checkbox", value: "true", checked: filters.in_stock === "true" }),
    el("button", { type: "submit" }, "Show products"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const chosen = Object.fromEntries(FILTERS.map((name) => [name, String(data.get(name) ?? "").trim()]));
    app.navigate(listHash(chosen, 0));
  });
  return form;
}

function productCard(product, app) {
  return el(
    "li",
    {},
    el(
      "article",
      { class: "product-card" },
      el("h2", {}, el("a", { href: `#/products/${product.id}` }, product.name)),
      el("p", { class: "price" }, formatMoney(product.price, product.currency)),
      availability(product),
      addToCartButton(product, app),
    ),
  );
}

export async function renderCatalog(container, query, app) {
  const filters = Object.fromEntries(FILTERS.map((name) => [name, query.get(name) ?? ""]));
  const offset = Math.max(0, Number.parseInt(query.get("offset") ?? "0", 10) || 0);
  document.title = filters.search ? `“${filters.search}” – Shop` : "Products – Shop";
  const form = filtersForm(filters, app);
  const results = el("section", { "aria-labelledby": "results-heading" }, el("p", {}, "Loading products…"));
  container.replaceChildren(el("h1", { tabindex: -1 }, "Products"), form, results);

  const answer = await app.load(
    () => request("GET", "/products", { query: { ...filters, limit: PAGE_SIZE, offset } }),
    form,
  );
  if (!answer) {
    results.replaceChildren(el("p", {}, "The products could not be loaded."));
    return;
  }
  const products = answer.data;
  const total = Number(answer.headers.get("X-Total-Count") ?? products.length);
  const summary =
    products.length === 0
      ? "No products match."
      : `Showing ${offset + 1}–${offset + products.length} of ${total} products.`;
  const pager = el(
    "nav",
    { class: "pager", "aria-label": "Pages of products" },
    offset > 0 && el("a", { href: listHash(filters, Math.max(0, offset - PAGE_SIZE)), rel: "prev" }, "Previous page"),
    offset + products.length < total && el("a", { href: listHash(filters, offset + PAGE_SIZE), rel: "next" }, "Next page"),
  );
  results.replaceChildren(
    el("h2", { id: "results-heading", class: "visually-hidden" }, "Results"),
    el("p", { class: "summary" }, summary),
    el("ul", { class: "product-grid" }, products.map((product) => productCard(product, app))),
    pager,
  );
}
