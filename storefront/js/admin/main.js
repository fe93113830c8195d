/** The admin page: an admin logs in, then manages the catalog and every customer's orders. */

import { actions } from "../actions.js";
import { ApiError } from "../api.js";
import { el, field } from "../elements.js";
import { clearNotices, showError } from "../notices.js";
import { Session } from "../session.js";
import { renderOrdersAdmin } from "./orders.js";
import { renderProductsAdmin } from "./products.js";

const main = document.getElementById("main");

const session = new Session("commerce.admin");
const app = { session, ...actions(session, () => render()) };

function logInForm() {
  const form = el(
    "form",
    { "aria-labelledby": "login-heading", class: "card-form" },
    el("h2", { id: "login-heading" }, "Log in as an admin"),
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    el("button", { type: "submit", class: "primary" }, "Log in"),
    el("p", { class: "hint" }, "An operator makes an account an admin on the server: ", el("code", {}, "./run admin EMAIL"), "."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const claims = await app.run(() => app.session.logIn(String(data.get("email")), String(data.get("password"))), form);
    if (!claims) return;
    if (claims.role !== "admin") {
      app.session.clear();
      showError(new ApiError(403, `${claims.email} is not an admin. An operator makes one with ./run admin EMAIL.`), form);
      return;
    }
    render();
  });
  return form;
}

function renderAccountNav() {
  const claims = app.session.claims;
  const item = document.getElementById("account-nav");
  if (!claims) {
    item.replaceChildren();
    return;
  }
  const logOut = () => {
    app.session.clear();
    clearNotices();
    render();
  };
  item.replaceChildren(
    el("span", { class: "signed-in" }, `Signed in as ${claims.email}`),
    " ",
    el("button", { type: "button", class: "link-button", onclick: logOut }, "Log out"),
  );
}

function render() {
  renderAccountNav();
  if (!app.session.token || app.session.claims?.role !== "admin") {
    main.replaceChildren(el("h1", { tabindex: -1 }, "Shop admin"), logInForm());
    return;
  }
  const products = el("section", { id: "products", class: "admin-section", "aria-labelledby": "products-heading" });
  const orders = el("section", { id: "orders", class: "admin-section", "aria-labelledby": "orders-heading" });
  main.replaceChildren(el("h1", { tabindex: -1 }, "Shop admin"), products, orders);
  renderProductsAdmin(products, app);
  renderOrdersAdmin(orders, app);
}

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
render();
