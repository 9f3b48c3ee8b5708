// The API client: the merchant key (this browser tab's session only), Bearer auth on every call, problem+json errors.
const keyName = "regis-pay.merchant-key";

export const merchantKey = () => sessionStorage.getItem(keyName);
export const rememberKey = (key) => sessionStorage.setItem(keyName, key);
export const forgetKey = () => sessionStorage.removeItem(keyName);

/** A failed call: `status` 0 when the service could not be reached; `problem` is the RFC 9457 body. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Title and detail of a failure, for people. */
export function problemText(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  if (error.problem?.code === "idempotency_key_reused")
    return "An earlier attempt with other details may have gone through: check the payment (or the payments list) first, then reload this page to try again.";
  const { title = "", detail = "" } = error.problem;
  // Details often restate the title ("the refunds would exceed the payment's amount"): say it once.
  const same = (a, b) => a.toLowerCase().replace(/\W+$/, "").includes(b.toLowerCase().replace(/\W+$/, ""));
  if (!title || !detail) return title || detail || `HTTP ${error.status}`;
  return same(title, detail) ? title : same(detail, title) ? detail : `${title}: ${detail}`;
}

/** One key per submitted form: a retry or a double click of the same form then creates one payment or refund, not two. */
function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Pages served over plain http from another host are not a secure context, where randomUUID is missing.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A short fingerprint of the merchant key: a kept key is the merchant's (the secret itself is not repeated). */
function owner() {
  let hash = 0x811c9dc5;
  for (const c of merchantKey() ?? "") hash = Math.imul(hash ^ c.charCodeAt(0), 0x01000193);
  return (hash >>> 0).toString(16);
}

/** Refusals made before a request is read (the key, the rate limit): they say nothing of an earlier attempt. */
const unread = [401, 403, 408, 429];

/**
 * The Idempotency-Key of a form's request (`scope`: "create", "refund:<payment id>", ...), kept in this tab, for this
 * merchant, while an attempt's outcome is unclear (no answer, or a 5xx): the form left then and opened again sends it
 * again, so the request cannot take effect twice. A success or the API's refusal lets it go (a refusal made before
 * the request was read only if no earlier attempt is unclear). `pending`: this form starts with one.
 */
export function formKey(scope) {
  const name = () => `regis-pay.pending-key.${owner()}.${scope}`;
  const fresh = idempotencyKey();
  return {
    pending: sessionStorage.getItem(name()) !== null,
    /** Runs `request(use)`, where `use()` answers the key as the request goes out (and keeps it until its outcome is known). */
    async send(request) {
      const stored = name();
      const earlier = sessionStorage.getItem(stored);
      const key = earlier ?? fresh;
      try {
        const result = await request(() => (sessionStorage.setItem(stored, key), key));
        sessionStorage.removeItem(stored);
        return result;
      } catch (error) {
        // A check of the form's own sent nothing: it is not answered.
        if (error.answered && error.status >= 400 && error.status < 500 && (earlier === null || !unread.includes(error.status))) sessionStorage.removeItem(stored);
        throw error;
      }
    },
  };
}

/** Calls the API on this origin; answers the parsed body or throws ApiError. A 401 forgets the key and tells the app. */
export async function api(path, { method = "GET", body, idempotencyKey: key, signal } = {}) {
  const headers = {};
  const secret = merchantKey();
  if (secret) headers.authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (key) headers["idempotency-key"] = key;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { title: "The service cannot be reached", detail: e.message });
  }
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  const problem = data && typeof data === "object" ? data : { title: `${res.status} ${res.statusText}`.trim() };
  if (res.status === 401) {
    forgetKey();
    dispatchEvent(new CustomEvent("regis:unauthorized"));
  }
  throw Object.assign(new ApiError(res.status, problem), { answered: true });
}
