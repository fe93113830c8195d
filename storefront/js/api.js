/**
 * Calls to the platform's JSON services, all on this page's origin (the edge routes them).
 *
 * One place for what every call shares: the bearer token, an Idempotency-Key on every command (so a
 * retry of the same action is safe), consistency tokens (a read waits until the read model holds the
 * caller's own last write, whichever instance answers) and the mapping of failures to the messages
 * the pages show.
 */

export const UNAVAILABLE = "The service is unavailable, retry shortly.";

/** A refused or failed call: `message` is what the page shows, `details` the 422's field errors. */
export class ApiError extends Error {
  constructor(status, message, { code = null, details = [], retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** A failure the same request may get past later (nothing reached the service, or it is down). */
export function isUnavailable(error) {
  return error instanceof ApiError && [0, 502, 503, 504].includes(error.status);
}

// The edge's routing (infra/edge.py SERVICE_PATHS): a consistency token is only good for reads of the
// service whose command returned it (another topic's token is a 422).
const SERVICE_PREFIXES = {
  users: ["/auth/", "/users/"],
  catalog: ["/products"],
  orders: ["/cart", "/orders", "/order/"],
  payments: ["/create-payment", "/verify-payment/", "/refunds", "/payments/", "/simulated-gateway/"],
};
const TOKENS_KEY = "commerce.consistency";

function serviceOf(path) {
  for (const [service, prefixes] of Object.entries(SERVICE_PREFIXES)) {
    if (prefixes.some((prefix) => path.startsWith(prefix))) return service;
  }
  return null;
}

function consistencyTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS_KEY) ?? "{}");
  } catch {
    return {};
  }
}

function rememberConsistencyToken(service, token) {
  sessionStorage.setItem(TOKENS_KEY, JSON.stringify({ ...consistencyTokens(), [service]: token }));
}

/** A fresh idempotency key: crypto.randomUUID where the page is a secure context, else the same
 * shape from crypto.getRandomValues (served over plain HTTP from another host). */
export function newIdempotencyKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function jsonBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorFrom(response, body) {
  const retryAfter = response.headers.get("Retry-After");
  if ([502, 503, 504].includes(response.status)) {
    return new ApiError(response.status, UNAVAILABLE, { code: body?.error ?? null, retryAfter });
  }
  const message = typeof body?.message === "string" ? body.message : `${response.status} ${response.statusText}`;
  return new ApiError(response.status, message, {
    code: body?.error ?? null,
    details: Array.isArray(body?.details) ? body.details : [],
    retryAfter,
  });
}

/**
 * Send one request; resolves to `{ data, headers }` for a 2xx, throws an ApiError otherwise.
 * `idempotencyKey`: a command's key, to retry an action with the key of its first attempt.
 */
export async function request(method, path, { body, token, query, idempotencyKey } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const service = serviceOf(path);
  if (method === "GET") {
    const consistency = service && consistencyTokens()[service];
    if (consistency) headers["X-Consistency-Token"] = consistency;
  } else {
    headers["Idempotency-Key"] = idempotencyKey ?? newIdempotencyKey();
  }
  let response;
  try {
    response = await fetch(withQuery(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, UNAVAILABLE, { code: "network" }); // refused, reset, offline
  }
  const data = await jsonBody(response);
  if (!response.ok) throw errorFrom(response, data);
  const written = response.headers.get("X-Consistency-Token");
  if (written && service) rememberConsistencyToken(service, written);
  return { data, headers: response.headers };
}
