/**
 * What the page tells its user: a polite status line for what went right and an alert region for what
 * went wrong (both aria-live, so screen readers announce them), and each 422 detail beside its input.
 */

import { ApiError } from "./api.js";
import { el } from "./elements.js";

const statusRegion = () => document.getElementById("status");
const alertRegion = () => document.getElementById("alert");

export function announce(message) {
  alertRegion().replaceChildren();
  statusRegion().textContent = message;
}

export function clearNotices(form = null) {
  statusRegion().textContent = "";
  alertRegion().replaceChildren();
  if (form) clearFieldErrors(form);
}

function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const error of form.querySelectorAll(".field-error")) {
    error.textContent = "";
    error.hidden = true;
  }
}

/** Put each detail beside the input of its name; returns those no input of the form is named for. */
function showFieldErrors(form, details) {
  const unplaced = [];
  let first = null;
  for (const detail of details) {
    const input = form?.elements.namedItem(detail.field);
    const error = input?.id && document.getElementById(`${input.id}-error`);
    if (!error) {
      unplaced.push(detail);
      continue;
    }
    input.setAttribute("aria-invalid", "true");
    error.textContent = detail.message;
    error.hidden = false;
    first ??= input;
  }
  first?.focus();
  return unplaced;
}

/** Show a failure: the service's own message (or "unavailable, retry shortly"), and its field errors. */
export function showError(error, form = null) {
  if (form) clearFieldErrors(form);
  statusRegion().textContent = "";
  if (!(error instanceof ApiError)) {
    console.error(error);
    alertRegion().replaceChildren(el("p", {}, "Something went wrong in this page; reload it and retry."));
    return;
  }
  const unplaced = showFieldErrors(form, error.details);
  const message = el("p", {}, error.message);
  if (unplaced.length === 0) alertRegion().replaceChildren(message);
  else alertRegion().replaceChildren(message, el("ul", {}, unplaced.map((detail) => el("li", {}, `${detail.field}: ${detail.message}`))));
}
