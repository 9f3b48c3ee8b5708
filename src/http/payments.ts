// The payments resource: create (Regis Pay's route and ours), read, history, time travel, cancel, refunds.
import { createRoute, OpenAPIHono, z, type RouteConfig, type RouteHandler } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Config } from "../config.ts";
import { uuidFrom } from "../core/ids.ts";
import { log } from "../core/log.ts";
import { minorDigits, toMinor } from "../payment/money.ts";
import { answer } from "./reply.ts";
import type { AppEnv } from "./app.ts";
import {
  cancelBody,
  createPaymentBody,
  eventDocumentSchema,
  historyQuery,
  idempotencyKeyHeader,
  legacyCreateBody,
  listQuery,
  paymentSummarySchema,
  paymentIdParam,
  paymentQuery,
  paymentSchema,
  problemResponses,
  refundBody,
  refundSchema,
} from "./schemas.ts";
import { problem } from "./problems.ts";
import { list } from "../readModel/payments.ts";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
/** A merchant's route can always answer: a missing or wrong key, its rate limit spent, a passing outage. */
const problems = (...statuses: number[]) => problemResponses(401, 429, 503, ...statuses);
/** A command's body can also be too large or not JSON; a keyed command can reuse its key with another request. */
const commandProblems = (...statuses: number[]) => problems(400, 413, 415, 422, ...statuses);
const replayed = { "Idempotent-Replayed": { description: "true when this is the stored answer to an earlier request with the same Idempotency-Key", schema: { type: "string" as const } } };
const security = [{ bearer: [] }];

/** Checks what the schema cannot know: the configured currencies, the currency's decimals, the maximum. */
export function validateAmount(config: Config, amount: number, currency: string): { ok: true; minor: number } | { ok: false; errors: Record<string, string[]> } {
  if (!config.CURRENCIES.includes(currency) || minorDigits(currency) === undefined)
    return { ok: false, errors: { currency: [`currency must be one of ${config.CURRENCIES.join(", ")}`] } };
  const minor = toMinor(amount, currency);
  if (!minor.ok) return { ok: false, errors: { amount: [`amount has more decimals than ${currency} allows (${minorDigits(currency)})`] } };
  if (amount > config.MAX_AMOUNT) return { ok: false, errors: { amount: [`amount must be at most ${config.MAX_AMOUNT}`] } };
  return { ok: true, minor: minor.minor };
}

const createRouteConfig = (path: string, body: z.ZodType, status: 200 | 201, response: z.ZodType, summary: string) =>
  createRoute({
    method: "post",
    path,
    summary,
    security,
    request: { body: { ...json(body), required: true }, headers: idempotencyKeyHeader },
    responses: {
      [status]: {
        description: "The payment",
        ...json(response),
        headers: { ...replayed, ...(status === 201 ? { Location: { description: "The payment's URL", schema: { type: "string" as const } } } : {}) },
      },
      ...commandProblems(409),
    },
  });

export const payments = new OpenAPIHono<AppEnv>();

// OpenAPIHono types a handler's documented JSON bodies only; ours also answer problem+json as plain Responses,
// so routes are registered through this one loosely typed door.
type Handler<R extends RouteConfig> = (c: Parameters<RouteHandler<R, AppEnv>>[0]) => Promise<Response>;
export function route<R extends RouteConfig>(app: OpenAPIHono<AppEnv>, config: R, handler: Handler<R>) {
  app.openapi(config, handler as never);
}

async function createPayment(c: Context<AppEnv>, body: { amount: number; currency: string; metadata?: Record<string, string> }) {
  const config = c.get("config");
  const caller = c.get("caller");
  const valid = validateAmount(config, body.amount, body.currency);
  if (!valid.ok) return { ok: false as const, response: problem(c, "validation_failed", { errors: valid.errors }) };
  const key = c.req.header("idempotency-key") ?? null;
  // With a key, the payment's id is derived from it, so the payment's own object is the key's record.
  const paymentId = key ? uuidFrom("payment", caller.merchantId, key) : crypto.randomUUID();
  const reply = await c.env.PAYMENTS.getByName(paymentId).create(
    caller,
    { paymentId, amountMinor: valid.minor, currency: body.currency, metadata: body.metadata ?? {} },
    key,
  );
  return { ok: true as const, reply, paymentId };
}

route(
  payments,
  createRouteConfig("/payment/create", legacyCreateBody, 200, z.object({ paymentId: z.uuid() }), "Create a payment (Regis Pay's route and contract)"),
  async (c) => {
    const created = await createPayment(c, c.req.valid("json") as z.infer<typeof legacyCreateBody>);
    if (!created.ok) return created.response;
    return answer(c, created.reply, (p) => ({ paymentId: p.id }), 200);
  },
);

route(payments, createRouteConfig("/payments", createPaymentBody, 201, paymentSchema, "Create a payment"), async (c) => {
  const created = await createPayment(c, c.req.valid("json") as z.infer<typeof createPaymentBody>);
  if (!created.ok) return created.response;
  if (created.reply.ok) c.header("location", `/api/payments/${created.paymentId}`);
  return answer(c, created.reply);
});

route(
  payments,
  createRoute({
    method: "get",
    path: "/payments/{id}",
    summary: "Read a payment, now or as it was at a version or a time",
    security,
    request: { params: paymentIdParam, query: paymentQuery },
    responses: { 200: { description: "The payment", ...json(paymentSchema) }, ...problems(400, 404) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { atVersion, asOf } = c.req.valid("query");
    const reply = await c.env.PAYMENTS.getByName(id).get(c.get("caller"), id, { ...(atVersion ? { atVersion } : {}), ...(asOf ? { asOf } : {}) });
    return answer(c, reply);
  },
);

route(
  payments,
  createRoute({
    method: "get",
    path: "/payments/{id}/events",
    summary: "The payment's event history, in the stored shape",
    security,
    request: { params: paymentIdParam, query: historyQuery },
    responses: {
      200: { description: "Events", ...json(z.object({ events: z.array(eventDocumentSchema), nextFromVersion: z.number().nullable() })) },
      ...problems(400, 404),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { fromVersion, limit } = c.req.valid("query");
    return answer(c, await c.env.PAYMENTS.getByName(id).history(c.get("caller"), id, fromVersion, limit));
  },
);

route(
  payments,
  createRoute({
    method: "post",
    path: "/payments/{id}/cancel",
    summary: "Cancel a payment that is not settled yet",
    security,
    request: { params: paymentIdParam, body: { ...json(cancelBody), required: false }, headers: idempotencyKeyHeader },
    responses: { 200: { description: "The cancelled payment", ...json(paymentSchema), headers: replayed }, ...commandProblems(404, 409) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { reason } = (c.req.valid("json") ?? {}) as z.infer<typeof cancelBody>;
    const key = c.req.header("idempotency-key") ?? null;
    return answer(c, await c.env.PAYMENTS.getByName(id).cancel(c.get("caller"), id, reason ?? null, key));
  },
);

route(
  payments,
  createRoute({
    method: "post",
    path: "/payments/{id}/refunds",
    summary: "Refund part or all of a settled payment",
    security,
    request: { params: paymentIdParam, body: { ...json(refundBody), required: false }, headers: idempotencyKeyHeader },
    responses: { 202: { description: "The refund, pending at the provider", ...json(refundSchema), headers: replayed }, ...commandProblems(404, 409) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { amount } = (c.req.valid("json") ?? {}) as z.infer<typeof refundBody>;
    const max = c.get("config").MAX_AMOUNT;
    if (amount !== undefined && amount > max) return problem(c, "validation_failed", { errors: { amount: [`amount must be at most ${max}`] } });
    const key = c.req.header("idempotency-key") ?? null;
    return answer(c, await c.env.PAYMENTS.getByName(id).refund(c.get("caller"), id, amount ?? null, key));
  },
);

route(
  payments,
  createRoute({
    method: "get",
    path: "/payments/{id}/refunds",
    summary: "The payment's refunds",
    security,
    request: { params: paymentIdParam },
    responses: { 200: { description: "Refunds", ...json(z.object({ refunds: z.array(refundSchema) })) }, ...problems(400, 404) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    return answer(c, await c.env.PAYMENTS.getByName(id).refunds(c.get("caller"), id), (refunds) => ({ refunds }));
  },
);

route(
  payments,
  createRoute({
    method: "get",
    path: "/payments",
    summary: "The merchant's payments, newest first, filtered and paged by cursor (from the read model)",
    security,
    request: { query: listQuery },
    responses: {
      200: { description: "A page", ...json(z.object({ object: z.literal("list"), data: z.array(paymentSummarySchema), nextCursor: z.string().nullable() })) },
      ...problems(400),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    try {
      return c.json(await list(c.env.READ_MODEL, { ...q, merchantId: c.get("caller").merchantId }), 200);
    } catch (e) {
      // The read model (D1) failing is passing: the list is retryable, as the payments themselves still answer.
      log("warn", "payments list unavailable", { requestId: c.get("requestId"), error: String(e) });
      return problem(c, "service_unavailable", { detail: "the payments list is briefly unavailable; retry later", retryAfterSeconds: 1 });
    }
  },
);
