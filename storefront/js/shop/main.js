/** The storefront: routes `#/...` to its views, keeps the header's account state, and runs each view's
 * actions with one error path (an ended session logs the customer out). */

import { actions } from "../actions.js";
import { el } from "../elements.js";
import { announce, clearNotices, showError } from "../notices.js";
import { Session } from "../session.js";
import { renderAccount } from "./account.js";
import { renderCart } from "./cart.js";
import { renderCatalog } from "./catalog.js";
import { renderOrder } from "./order.js";
import { renderOrders } from "./orders.js";
import { renderProduct } from "./product.js";

const ROUTES = [
  [/^\/(?:products)?$/, (match, query) => (main, app) => renderCatalog(main, query, app)],
  [/^\/products\/(\d+)$/, (match) => (main, app) => renderProduct(main, Number(match[1]), app)],
  [/^\/cart$/, () => renderCart],
  [/^\/orders$/, (match, query) => (main, app) => renderOrders(main, query, app)],
  [/^\/orders\/(\d+)$/, (match) => (main, app) => renderOrder(main, Number(match[1]), app)],
  [/^\/account$/, () => renderAccount],
];

const main = document.getElementById("main");
let leaveView = null; // stops the current view's polling
let routeGeneration = 0;
let pendingNotice = null;

const session = new Session("commerce.customer");
const app = {
  session,
  ...actions(session, () => renderAccountNav()),

  /** Go to a view; `notice` is announced once it shows (a route change clears the last one). */
  navigate(hash, notice = null) {
    pendingNotice = notice;
    if (location.hash === hash) route();
    else location.hash = hash;
  },

  signedIn() {
    renderAccountNav();
  },
};

function renderAccountNav() {
  const item = document.getElementById("account-nav");
  const claims = app.session.claims;
  if (!claims) {
    item.replaceChildren(el("a", { href: "#/account" }, "Log in or register"));
    return;
  }
  item.replaceChildren(
    el("span", { class: "signed-in" }, `Signed in as ${claims.email}`),
    " ",
    el(
      "button",
      {
        type: "button",
        class: "link-button",
        onclick: () => {
          app.session.clear();
          renderAccountNav();
          app.navigate("#/");
        },
      },
      "Log out",
    ),
  );
}

async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  leaveView?.();
  leaveView = null;
  clearNotices();
  if (pendingNotice) announce(pendingNotice);
  pendingNotice = null;
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#${path}`);
  }
  if (!found) {
    ++routeGeneration;
    main.replaceChildren(el("h1", { tabindex: -1 }, "Not found"), el("p", {}, el("a", { href: "#/" }, "Back to the products")));
    return;
  }
  const view = found[1](found[0].exec(path), new URLSearchParams(query ?? ""));
  // Each view renders into a container of its own: one the customer has already left renders unseen.
  const generation = ++routeGeneration;
  const container = el("div", { class: "view" });
  main.replaceChildren(container);
  try {
    const leave = (await view(container, app)) ?? null;
    if (generation === routeGeneration) leaveView = leave;
    else leave?.();
  } catch (error) {
    showError(error);
  }
  if (generation !== routeGeneration) return;
  // After a link or a button (not on the first load, nor when the view focused an invalid field).
  const heading = main.querySelector("h1");
  const focused = document.activeElement;
  if (heading && focused !== document.body && !container.contains(focused)) heading.focus({ preventScroll: true });
}

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault(); // the hash is the route: move focus without changing it
  main.focus();
});
window.addEventListener("hashchange", route);
renderAccountNav();
route();
