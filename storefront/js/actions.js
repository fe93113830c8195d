/** How both pages run what a user does and what a view loads: one error path, where a 401 on a
 * signed-in page ends the session (its token expired or was revoked) and the page asks to log in. */

import { ApiError } from "./api.js";
import { clearNotices, showError } from "./notices.js";

/** `run` and `load` for an app whose `session` is cleared, and `signedOut()` called, on a 401. */
export function actions(session, signedOut) {
  async function load(action, form = null) {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && session.token) {
        session.clear(); // expired or revoked: log in again
        signedOut();
      }
      showError(error, form);
      return undefined;
    }
  }
  return {
    /** Run a user's action: earlier notices go, failures go to the alert region (and a form's fields). */
    async run(action, form = null) {
      clearNotices(form);
      return load(action, form);
    },
    /** Load what a view shows, keeping what was just announced; failures go to the alert region. */
    load,
  };
}
