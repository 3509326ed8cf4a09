// The HTTP API client and the session. The API key is the only thing the console keeps in storage
// (sessionStorage: gone when the tab closes); it travels in the X-API-Key header, never in a URL.

const STORAGE_KEY = "rotasign.apiKey";
// The console is served at <root>/console/ and the API at <root>/api/v1/ (any stage prefix included).
const BASE = new URL("../api/v1/", document.baseURI);

export const session = {
  get key() {
    return sessionStorage.getItem(STORAGE_KEY);
  },
  save(key) {
    sessionStorage.setItem(STORAGE_KEY, key);
  },
  clear() {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};

/** An API error: HTTP status plus the API's {code, message, details}. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && typeof body === "object" && body.error) || {};
    super(typeof error.message === "string" ? error.message : `The service answered ${status}.`);
    this.status = status;
    this.code = typeof error.code === "string" ? error.code : "http_error";
    this.details = error.details && typeof error.details === "object" ? error.details : {};
  }
}

let unauthenticatedHandler = null;

/** Called (once per failing request) when the API rejects the key: the session is over. */
export function onUnauthenticated(handler) {
  unauthenticatedHandler = handler;
}

/** Encode one path segment (an id or an alias). */
export const seg = (value) => encodeURIComponent(String(value));

/**
 * Call the API: api("GET", "keypairs", {query: {type: "dynamic"}}) → the decoded JSON body.
 * Throws ApiError for an error answer (status 0 when the service could not be reached).
 */
export async function api(method, path, { query = {}, body, key = session.key } = {}) {
  const url = new URL(path, BASE);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, { error: { code: "network_error", message: "The service could not be reached." } });
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && unauthenticatedHandler) unauthenticatedHandler(error);
    throw error;
  }
  return data;
}

/**
 * A list route that may not exist on this deployment yet, or that the caller may not read: any
 * answer but success or 401 gives an empty list, so a form field shows empty instead of failing.
 */
export async function optionalList(path) {
  try {
    const items = [];
    let next = null;
    // A few pages at most: these lists (teams, profiles, users, groups) feed form choices.
    for (let page = 0; page < 10; page += 1) {
      const data = await api("GET", path, { query: { limit: 500, next } });
      items.push(...(Array.isArray(data?.items) ? data.items : []));
      next = data?.next;
      if (!next) break;
    }
    return { available: true, items };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    return { available: false, items: [] };
  }
}
