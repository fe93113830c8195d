/** Logging in and registering (a new account is logged in at once). */

import { el, field } from "../elements.js";
import { register } from "../session.js";

function logInForm(app) {
  const form = el(
    "form",
    { "aria-labelledby": "login-heading" },
    el("h2", { id: "login-heading" }, "Log in"),
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    el("button", { type: "submit", class: "primary" }, "Log in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const claims = await app.run(() => app.session.logIn(String(data.get("email")), String(data.get("password"))), form);
    if (claims) signedIn(app, claims);
  });
  return form;
}

function registerForm(app) {
  const form = el(
    "form",
    { "aria-labelledby": "register-heading" },
    el("h2", { id: "register-heading" }, "Register"),
    field("User name", { name: "username", autocomplete: "nickname", required: true, minlength: 3, maxlength: 32 }, { hint: "3 to 32 letters, digits, dots, dashes or underscores." }),
    field("Email", { name: "email", type: "email", autocomplete: "email", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 128 }, { hint: "8 to 128 characters." }),
    el("button", { type: "submit" }, "Register"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const [username, email, password] = ["username", "email", "password"].map((name) => String(data.get(name)));
    const claims = await app.run(async () => {
      await register(username, email, password);
      return app.session.logIn(email, password);
    }, form);
    if (claims) signedIn(app, claims);
  });
  return form;
}

function signedIn(app, claims) {
  app.signedIn();
  app.navigate("#/", `Signed in as ${claims.email}.`);
}

export function renderAccount(container, app) {
  document.title = "Log in or register – Shop";
  const claims = app.session.claims;
  if (claims) {
    container.replaceChildren(el("h1", { tabindex: -1 }, "Your account"), el("p", {}, `Signed in as ${claims.email}.`));
    return;
  }
  container.replaceChildren(el("h1", { tabindex: -1 }, "Log in or register"), el("div", { class: "two-columns" }, logInForm(app), registerForm(app)));
}
