/**
 * Who is logged in on this tab: the JWT kept in sessionStorage (gone when the tab closes), one key per
 * page so the storefront and the admin page can hold different accounts. The token's claims are read
 * only to label the page; every service checks the token itself.
 */

import { request } from "./api.js";

function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

export class Session {
  constructor(storageKey) {
    this.storageKey = storageKey;
  }

  /** The token, or null once it is missing or expired. */
  get token() {
    const token = sessionStorage.getItem(this.storageKey);
    if (!token) return null;
    const claims = claimsOf(token);
    if (!claims || (claims.exp && claims.exp * 1000 <= Date.now())) {
      this.clear();
      return null;
    }
    return token;
  }

  get claims() {
    const token = this.token;
    return token ? claimsOf(token) : null;
  }

  async logIn(email, password) {
    const { data } = await request("POST", "/auth/login", { body: { email, password } });
    sessionStorage.setItem(this.storageKey, data.token);
    return claimsOf(data.token);
  }

  clear() {
    sessionStorage.removeItem(this.storageKey);
  }
}

export function register(username, email, password) {
  return request("POST", "/auth/register", { body: { username, email, password } });
}
