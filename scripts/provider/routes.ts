// The simulator's one routing table: Regis Pay's PSP and notification routes, refunds and cancels, and the /_sim control plane.
import { randomUUID } from "node:crypto";
import { canonical, isObject } from "./json.ts";
import { fromMinor, isCurrency, toMinor } from "./money.ts";
import { seededRandom } from "../random.ts";
import { type DeclinableRoute, mergeSettings, type RecordedRoute } from "./settings.ts";
import { signatureHeader, verifySignature } from "./signature.ts";
import { type Payment, paymentView, resetState, type Result, type State, wakeHeld } from "./state.ts";

export type SimRequest = {
  method: string;
  path: string;
  params: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  raw: Buffer;
  // undefined when the body is empty or not JSON
  body: unknown;
  idempotencyKey: string | null;
};

export type RouteEntry = {
  method: "GET" | "POST" | "DELETE";
  path: string;
  // set on the routes that get fault injection and a call record
  records?: RecordedRoute;
  handle(request: SimRequest, state: State): Result;
};

const ok = (status: number, body: unknown, ids: { paymentId?: string; refundId?: string } = {}): Result => ({
  status,
  body,
  outcome: "ok",
  ...ids,
});

export const reject = (status: number, code: string, message: string, paymentId?: string): Result => ({
  status,
  body: { code, message },
  outcome: "rejected",
  ...(paymentId ? { paymentId } : {}),
});

// Replays the stored answer of a key already used on this method and path. Only final answers (success or decline)
// bind a key; rejections and injected faults leave it free, so a retry performs the real operation.
function idempotent(state: State, request: SimRequest, run: () => Result): Result {
  if (request.idempotencyKey === null) return run();
  const id = `${request.method} ${request.path} ${request.idempotencyKey}`;
  const fingerprint = canonical(request.body ?? null);
  const stored = state.idempotency.get(id);
  if (stored && stored.fingerprint !== fingerprint) {
    return reject(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request body");
  }
  // a decline stays a decline when replayed (declines are permanent)
  if (stored) return stored.result.outcome === "declined" ? stored.result : { ...stored.result, outcome: "replayed" };
  const result = run();
  if (result.outcome === "ok" || result.outcome === "declined") state.idempotency.set(id, { fingerprint, result });
  return result;
}

// The first matching decline rule as a 402; rule amounts compare in minor units (one finer than the currency never matches).
function declined(state: State, route: DeclinableRoute, amountMinor: number, currency: string, paymentId?: string) {
  const rule = state.settings.declines.find(
    (candidate) =>
      (candidate.route === undefined || candidate.route === route) &&
      (candidate.currency === undefined || candidate.currency === currency) &&
      (candidate.amountEquals === undefined || toMinor(candidate.amountEquals, currency) === amountMinor) &&
      (candidate.amountGte === undefined || (toMinor(candidate.amountGte, currency) ?? Infinity) <= amountMinor),
  );
  if (!rule) return null;
  const body = { code: rule.code ?? "card_declined", message: rule.reason ?? "the card was declined" };
  return { status: 402, body, outcome: "declined", ...(paymentId ? { paymentId } : {}) } satisfies Result;
}

// Handler of a route under /psp/api/payments/:reference: resolves the provider payment, or answers 404.
function withPayment(handle: (payment: Payment, request: SimRequest, state: State) => Result) {
  return (request: SimRequest, state: State): Result => {
    const payment = state.payments.get(request.params.reference ?? "");
    return payment ? handle(payment, request, state) : reject(404, "payment_not_found", `no payment ${request.params.reference}`);
  };
}

const statusView = (payment: Payment) => ({ paymentId: payment.paymentId, status: payment.status });

export const routes: RouteEntry[] = [
  {
    method: "POST",
    path: "/psp/api/payments/create",
    records: "create",
    handle(request, state) {
      const { body } = request;
      if (!isObject(body)) return reject(400, "invalid_request", "body must be a JSON object { amount, currency }");
      const { currency } = body;
      if (!isCurrency(currency)) return reject(400, "invalid_request", "currency must be an ISO 4217 code");
      const amountMinor = toMinor(body.amount, currency);
      if (!amountMinor) {
        return reject(400, "invalid_request", `amount must be a positive number with at most the minor units of ${currency}`);
      }
      return idempotent(state, request, () => {
        const decline = declined(state, "create", amountMinor, currency);
        if (decline) return decline;
        const payment: Payment = {
          paymentId: randomUUID(),
          currency,
          amountMinor,
          status: "created",
          createdAt: new Date().toISOString(),
          idempotencyKey: request.idempotencyKey,
          decline: null,
          refunds: [],
        };
        state.payments.set(payment.paymentId, payment);
        return ok(202, { paymentId: payment.paymentId }, { paymentId: payment.paymentId });
      });
    },
  },
  {
    method: "POST",
    path: "/psp/api/payments/:reference/settle",
    records: "settle",
    handle: withPayment((payment, _request, state) => {
      const { paymentId } = payment;
      switch (payment.status) {
        case "cancelled":
          return reject(409, "payment_cancelled", "the payment was cancelled", paymentId);
        case "settled":
          return { ...ok(200, statusView(payment), { paymentId }), outcome: "replayed" };
        case "declined":
          return payment.decline ?? reject(409, "payment_declined", "the payment was declined", paymentId);
        case "created": {
          const decline = declined(state, "settle", payment.amountMinor, payment.currency, paymentId);
          if (decline) {
            payment.status = "declined";
            payment.decline = decline;
            return decline;
          }
          payment.status = "settled";
          return ok(200, statusView(payment), { paymentId });
        }
      }
    }),
  },
  {
    method: "POST",
    path: "/psp/api/payments/:reference/cancel",
    records: "cancel",
    handle: withPayment((payment) => {
      const { paymentId } = payment;
      if (payment.status === "settled") return reject(409, "payment_settled", "the payment is settled; refund it", paymentId);
      if (payment.status === "cancelled") return { ...ok(200, statusView(payment), { paymentId }), outcome: "replayed" };
      payment.status = "cancelled";
      return ok(200, statusView(payment), { paymentId });
    }),
  },
  {
    method: "POST",
    path: "/psp/api/payments/:reference/refunds",
    records: "refund",
    handle: withPayment((payment, request, state) => {
      const { paymentId, currency } = payment;
      const amountMinor = isObject(request.body) ? toMinor(request.body.amount, currency) : null;
      if (!amountMinor) {
        return reject(400, "invalid_request", `body must be { amount }, positive, in at most the minor units of ${currency}`, paymentId);
      }
      return idempotent(state, request, () => {
        if (payment.status !== "settled") {
          return reject(409, "payment_not_settled", `a ${payment.status} payment cannot be refunded`, paymentId);
        }
        const decline = declined(state, "refund", amountMinor, currency, paymentId);
        if (decline) return decline;
        const refunded = payment.refunds.reduce((sum, refund) => sum + refund.amountMinor, 0);
        if (refunded + amountMinor > payment.amountMinor) {
          return reject(422, "refund_exceeds_amount", "refunds would exceed the payment amount", paymentId);
        }
        const refund = {
          refundId: randomUUID(),
          amountMinor,
          createdAt: new Date().toISOString(),
          idempotencyKey: request.idempotencyKey,
        };
        payment.refunds.push(refund);
        const body = { refundId: refund.refundId, paymentId, amount: fromMinor(amountMinor, currency), status: "succeeded" };
        return ok(201, body, { paymentId, refundId: refund.refundId });
      });
    }),
  },
  {
    method: "POST",
    path: "/notifications/api/send",
    records: "notify",
    handle(request, state) {
      if (state.webhookSecret !== undefined) {
        const header = request.headers[signatureHeader];
        const nowSeconds = Math.floor(Date.now() / 1000);
        const verdict = verifySignature(state.webhookSecret, typeof header === "string" ? header : undefined, request.raw, nowSeconds);
        if (verdict !== "ok") return reject(400, verdict, `Regis-Signature check failed: ${verdict}`);
      }
      const { body } = request;
      if (!isObject(body) || typeof body.id !== "string" || body.id === "" || typeof body.jsonPayload !== "string") {
        return reject(400, "invalid_request", "body must be { id: string, jsonPayload: string }");
      }
      try {
        JSON.parse(body.jsonPayload);
      } catch {
        return reject(400, "invalid_request", "jsonPayload must be a JSON string");
      }
      const result = idempotent(state, request, () => ok(200, { received: true }));
      return result.outcome === "replayed" ? { ...result, body: { received: true, duplicate: true }, outcome: "duplicate" } : result;
    },
  },
  {
    method: "POST",
    path: "/toggle-errors",
    handle(_request, state) {
      state.settings.errors = !state.settings.errors;
      return ok(200, { errors: state.settings.errors });
    },
  },
  { method: "GET", path: "/health", handle: () => ok(200, { status: "ok" }) },
  { method: "GET", path: "/_sim/calls", handle: (_request, state) => ok(200, state.calls) },
  {
    method: "DELETE",
    path: "/_sim/calls",
    handle(_request, state) {
      const cleared = state.calls.length;
      state.calls = [];
      return ok(200, { cleared });
    },
  },
  { method: "GET", path: "/_sim/under-way", handle: (_request, state) => ok(200, [...state.underWay]) },
  { method: "GET", path: "/_sim/payments", handle: (_request, state) => ok(200, [...state.payments.values()].map(paymentView)) },
  { method: "GET", path: "/_sim/settings", handle: (_request, state) => ok(200, state.settings) },
  {
    method: "POST",
    path: "/_sim/settings",
    handle(request, state) {
      const merged = mergeSettings(state.settings, request.body);
      if ("problems" in merged) return reject(400, "invalid_settings", merged.problems.join("; "));
      state.settings = merged.settings;
      wakeHeld(state);
      // posting a seed (even the same one) restarts the sequence, so a test can replay it
      if (isObject(request.body) && "seed" in request.body) state.random = seededRandom(state.settings.seed);
      return ok(200, state.settings);
    },
  },
  {
    method: "POST",
    path: "/_sim/reset",
    handle(_request, state) {
      resetState(state);
      return ok(200, state.settings);
    },
  },
];

// Exact match on method and path; ":name" segments match one non-empty segment.
export function matchRoute(method: string, path: string): { entry: RouteEntry; params: Record<string, string> } | null {
  const segments = path.split("/");
  for (const entry of routes) {
    if (entry.method !== method) continue;
    const pattern = entry.path.split("/");
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matches = pattern.every((part, index) => {
      const segment = segments[index] ?? "";
      if (!part.startsWith(":")) return part === segment;
      params[part.slice(1)] = segment;
      return segment !== "";
    });
    if (matches) return { entry, params };
  }
  return null;
}
