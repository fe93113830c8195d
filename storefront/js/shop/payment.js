/**
 * Paying a confirmed order: `create-payment` starts (or finds) the order's payment intent; with the
 * simulated gateway the card is confirmed on its stand-in for Stripe.js, then `verify-payment` records
 * the verdict. With Stripe (test mode when its keys are test keys) the card is confirmed by Stripe.js,
 * which Stripe requires to be loaded from its own site, and only then: the simulated gateway's pages
 * fetch nothing from outside the origin. If Stripe.js cannot be loaded (no network), the page shows the
 * intent's state and checks it on request. The client secret stays in this function's memory, never in
 * storage or the URL.
 */

const STRIPE_JS = "https://js.stripe.com/v3/";

/** Stripe.js, loaded once, on the first payment through Stripe; null when it cannot be loaded. */
let stripeJs = null;
function loadStripeJs() {
  stripeJs ??= new Promise((resolve) => {
    const script = el("script", { src: STRIPE_JS });
    script.addEventListener("load", () => resolve(window.Stripe ?? null));
    script.addEventListener("error", () => resolve(null));
    document.head.append(script);
  });
  return stripeJs;
}

import { ApiError, request } from "../api.js";
import { el, field } from "../elements.js";
import { formatMoney, fromMinorUnits } from "../money.js";
import { announce, showError } from "../notices.js";

const TEST_CARDS = "Test cards: 4242 4242 4242 4242 is accepted, 4000 0000 0000 0002 is declined.";

/** Records the gateway's verdict and says it. A declined card is not the end: the order stays held
 * until its deadline and the same form takes another card (returns "failed" so the form asks again). */
async function verify(app, intentId) {
  const verified = await app.run(() => request("POST", `/verify-payment/${intentId}`, { token: app.session.token }));
  if (!verified) return null;
  const { status, intentStatus, failure } = verified.data;
  if (status === "succeeded") announce("Payment succeeded: the order turns paid in a moment.");
  else if (status === "failed")
    announce(`The card was declined (${failure ?? "no reason given"}). Your order is still held: try another card.`);
  else announce(`The payment is not complete yet (the gateway says: ${intentStatus}).`);
  return status;
}

function simulatedCardForm(section, payment, app) {
  const form = el(
    "form",
    { class: "card-form", "aria-label": "Card" },
    field("Card number", { name: "card", value: "4242 4242 4242 4242", inputmode: "numeric", autocomplete: "off", required: true }, { hint: TEST_CARDS }),
    el("button", { type: "submit", class: "primary" }, `Pay ${formatMoney(fromMinorUnits(payment.amount, payment.currency), payment.currency)}`),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const card = form.elements.namedItem("card").value.trim();
    const confirmed = await app.run(
      () =>
        request("POST", `/simulated-gateway/payment_intents/${payment.intentId}/confirm`, {
          body: { clientSecret: payment.secret, card },
        }),
      form,
    );
    const status = confirmed ? await verify(app, payment.intentId) : null;
    button.disabled = false;
    if (status === "failed") form.elements.namedItem("card").select();
  });
  section.append(el("p", {}, "The simulated gateway stands in for a card processor: no money moves."), form);
  form.elements.namedItem("card").focus();
}

/** A card form of Stripe Elements: Stripe.js confirms the intent with the card, then the service
 * records the verdict. */
function stripeCardForm(section, payment, app, Stripe) {
  const stripe = Stripe(payment.pubKey);
  const card = stripe.elements().create("card");
  const mount = el("div", { class: "stripe-card", role: "group", "aria-labelledby": "stripe-card-label" });
  const form = el(
    "form",
    { class: "card-form", "aria-label": "Card" },
    el("p", { id: "stripe-card-label" }, "Card"),
    mount,
    String(payment.pubKey).startsWith("pk_test_") && el("p", { class: "hint" }, TEST_CARDS),
    el("button", { type: "submit", class: "primary" }, `Pay ${formatMoney(fromMinorUnits(payment.amount, payment.currency), payment.currency)}`),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const { error } = await stripe.confirmCardPayment(payment.secret, { payment_method: { card } });
    if (error) showError(new ApiError(402, error.message ?? "The card was not accepted."), form);
    else await verify(app, payment.intentId);
    button.disabled = false;
  });
  section.append(form);
  card.mount(mount);
}

async function stripePayment(section, payment, app) {
  const Stripe = await loadStripeJs();
  if (Stripe && payment.pubKey) stripeCardForm(section, payment, app, Stripe);
  else stripeIntentState(section, payment, app);
}

function stripeIntentState(section, payment, app) {
  const testMode = String(payment.pubKey ?? "").startsWith("pk_test_");
  section.append(
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Gateway"),
      el("dd", {}, testMode ? "Stripe, test mode" : "Stripe"),
      el("dt", {}, "Payment intent"),
      el("dd", {}, el("code", {}, payment.intentId)),
      el("dt", {}, "Amount"),
      el("dd", {}, formatMoney(fromMinorUnits(payment.amount, payment.currency), payment.currency)),
      el("dt", {}, "Client secret"),
      el("dd", {}, "received (kept in this page only)"),
    ),
    el(
      "p",
      {},
      "Confirming a card needs Stripe.js, which could not be loaded from Stripe's site. ",
      testMode
        ? "In test mode, confirm the intent with Stripe's tools (for example with the test card pm_card_visa), then check the payment here."
        : "Confirm the payment with Stripe, then check it here.",
    ),
    el("button", { type: "button", onclick: () => verify(app, payment.intentId) }, "Check the payment"),
  );
}

export function renderPayment(section, order, app) {
  const start = el("button", { type: "button", class: "primary" }, `Pay ${formatMoney(order.amount, order.currency)}`);
  section.replaceChildren(el("h2", { id: "payment-heading" }, "Payment"), start);
  start.addEventListener("click", async () => {
    start.disabled = true;
    const created = await app.run(() =>
      request("POST", "/create-payment", { token: app.session.token, body: { orderNumber: order.orderNumber } }),
    );
    if (!created) {
      start.disabled = false;
      return;
    }
    const payment = created.data.data;
    start.remove();
    if (payment.gateway === "simulated") simulatedCardForm(section, payment, app);
    else await stripePayment(section, payment, app);
  });
}
