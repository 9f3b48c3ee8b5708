// The one table from error codes to HTTP status, and RFC 9457 problem+json answers with a stable `code`.
import type { Context } from "hono";
import type { FailureCode } from "../durable/replies.ts";
import type { AppEnv } from "./app.ts";

export type ProblemCode =
  | FailureCode
  | "not_found"
  | "malformed_json"
  | "unsupported_media_type"
  | "payload_too_large"
  | "unauthorized"
  | "forbidden"
  | "rate_limited"
  | "method_not_allowed"
  | "upgrade_required"
  | "service_unavailable"
  | "internal_error";

const table: Record<ProblemCode, { status: number; title: string }> = {
  validation_failed: { status: 400, title: "The request is invalid" },
  malformed_json: { status: 400, title: "The body is not valid JSON" },
  unauthorized: { status: 401, title: "A valid API key is required" },
  forbidden: { status: 403, title: "This key may not do that" },
  not_found: { status: 404, title: "Not found" },
  payment_not_found: { status: 404, title: "No such payment" },
  refund_not_found: { status: 404, title: "No such refund" },
  version_not_found: { status: 404, title: "The payment has no such version" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  invalid_transition: { status: 409, title: "The payment is not in a state that allows this" },
  payment_not_cancellable: { status: 409, title: "The payment can no longer be cancelled" },
  payment_not_settled: { status: 409, title: "The payment is not settled yet" },
  payment_not_refundable: { status: 409, title: "The payment cannot be refunded" },
  version_conflict: { status: 409, title: "The payment changed concurrently" },
  payload_too_large: { status: 413, title: "The body is too large" },
  unsupported_media_type: { status: 415, title: "The body must be application/json" },
  idempotency_key_reused: { status: 422, title: "The Idempotency-Key was used with a different request" },
  refund_exceeds_amount: { status: 422, title: "The refunds would exceed the payment's amount" },
  too_many_refunds: { status: 409, title: "The payment takes no more refunds" },
  upgrade_required: { status: 426, title: "This route is a WebSocket" },
  rate_limited: { status: 429, title: "Too many requests" },
  internal_error: { status: 500, title: "Internal error" },
  service_unavailable: { status: 503, title: "The service is briefly unavailable" },
  store_unavailable: { status: 503, title: "The event store is unavailable" },
  provider_unavailable: { status: 503, title: "The payment provider is unavailable" },
};

export const statusOf = (code: ProblemCode) => table[code].status;

/** The codes that answer with `status`, for the OpenAPI document. */
export const codesOf = (status: number) => (Object.keys(table) as ProblemCode[]).filter((code) => table[code].status === status);

/**
 * What an error thrown from a payment's object means to a client. The event store failing (the error crossed RPC,
 * which keeps its name and message but not its class) is retryable with the same key; so are the platform's own
 * passing failures: the object overloaded (retry later, not at once), or reset (e.g. by a deploy) after the request
 * reached it, so a command may have run. Anything else is a bug.
 */
export function thrownProblem(err: unknown): { code: ProblemCode; detail?: string; retryAfterSeconds?: number } {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  if (text.startsWith("EventStoreError")) return { code: "store_unavailable", detail: "the event store is unavailable; retry (with the same Idempotency-Key, if the request had one)", retryAfterSeconds: 1 };
  const platform = err as { retryable?: unknown; overloaded?: unknown } | null;
  if (platform?.overloaded === true) return { code: "service_unavailable", detail: "the payment is receiving too many requests; retry later", retryAfterSeconds: 10 };
  if (platform?.retryable === true) return { code: "service_unavailable", detail: "the request may or may not have taken effect; retry (with the same Idempotency-Key, if the request had one)", retryAfterSeconds: 1 };
  return { code: "internal_error" };
}

export type ProblemExtras = { detail?: string; errors?: Record<string, string[]>; retryAfterSeconds?: number };

/** The merchant's rate limit (Cloudflare's binding): a 429 once it is spent, else null. */
export async function rateLimited(c: Context<AppEnv>, merchantId: string) {
  const { success } = await c.env.MERCHANT_RATE_LIMIT.limit({ key: merchantId });
  return success ? null : problem(c, "rate_limited", { retryAfterSeconds: c.get("config").RATE_LIMIT_PERIOD_SECONDS });
}

export function problem(c: Context, code: ProblemCode, extras: ProblemExtras = {}) {
  const { status, title } = table[code];
  const headers: Record<string, string> = { "content-type": "application/problem+json" };
  if (extras.retryAfterSeconds !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(extras.retryAfterSeconds)));
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="regis-pay"'; // RFC 9110 §11.6.1: a 401 names its scheme
  if (status === 426) headers.upgrade = "websocket"; // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to
  const body = {
    type: `https://regis-pay.dev/problems/${code}`,
    title,
    status,
    code,
    ...(extras.detail ? { detail: extras.detail } : {}),
    ...(extras.errors ? { errors: extras.errors } : {}),
    requestId: c.get("requestId") as string | undefined,
  };
  return new Response(JSON.stringify(body), { status, headers });
}
