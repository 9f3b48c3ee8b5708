// Operator routes (admin key): re-drive a stalled or stuck payment, or every stalled one.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { log } from "../core/log.ts";
import type { AppEnv } from "./app.ts";
import { route } from "./payments.ts";
import { thrownProblem } from "./problems.ts";
import { answer } from "./reply.ts";
import { rebuildContinuation, rebuildPage, stalledIds } from "../readModel/payments.ts";
import { services } from "../wiring.ts";
import { paymentIdParam, problemResponses } from "./schemas.ts";

export const admin = new OpenAPIHono<AppEnv>();

/** An operator's route can always answer: an invalid request, a missing or wrong admin key, a passing outage. */
const problems = (...statuses: number[]) => problemResponses(400, 401, 403, 503, ...statuses);

route(
  admin,
  createRoute({
    method: "post",
    path: "/payments/{id}/redrive",
    summary: "Re-run every due step of a payment, stalled ones included (admin key)",
    security: [{ bearer: [] }],
    request: { params: paymentIdParam },
    responses: {
      202: { description: "Steps re-driven", content: { "application/json": { schema: z.object({ redriven: z.number() }) } } },
      ...problems(404, 413, 415),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    return answer(c, await c.env.PAYMENTS.getByName(id).redrive(id));
  },
);

const redriveStalledBody = z.strictObject({
  /** Resume after this payment id (the previous page's `next`). */
  after: z.uuid().optional(),
  limit: z.int().min(1).max(100).default(50),
  /**
   * The page's payments are re-driven evenly over this many seconds (the first at once; a payment's due steps
   * together), so that a provider just back from an outage is not sent them all at once. Each page spreads its own:
   * wait as long before asking for the next.
   */
  spreadSeconds: z.int().min(0).max(900).default(0),
});
const redriveStalledReply = z.object({
  payments: z.array(z.object({ id: z.string(), redriven: z.number().optional(), error: z.string().optional() })),
  next: z.string().nullable(),
});

route(
  admin,
  createRoute({
    method: "post",
    path: "/redrive-stalled",
    summary: "Re-drive every stalled payment, one page per call (admin key): e.g. after a provider outage or bad credentials stalled many",
    security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: redriveStalledBody } }, required: false } },
    responses: {
      202: {
        description: "One page re-driven; call again with `after: next` until `next` is null. A payment that failed to re-drive carries its error code and stays stalled.",
        content: { "application/json": { schema: redriveStalledReply } },
      },
      ...problems(413, 415),
    },
  }),
  async (c) => {
    const body = redriveStalledBody.parse(c.req.valid("json") ?? {});
    const ids = await stalledIds(c.env.READ_MODEL, body.after ?? null, body.limit);
    const payments: z.infer<typeof redriveStalledReply>["payments"] = [];
    // Ten at a time: after an outage every one of them reloads, relays and calls the provider at once otherwise.
    for (let i = 0; i < ids.length; i += 10) {
      const chunk = ids.slice(i, i + 10).map(async (id, j) => {
        try {
          const reply = await c.env.PAYMENTS.getByName(id).redrive(id, Math.floor(((i + j) * body.spreadSeconds) / ids.length));
          return reply.ok ? { id, redriven: reply.body.redriven } : { id, error: reply.code };
        } catch (e) {
          log("error", "re-drive failed", { requestId: c.get("requestId"), paymentId: id, error: String(e) });
          return { id, error: thrownProblem(e).code };
        }
      });
      payments.push(...(await Promise.all(chunk)));
    }
    return c.json({ payments, next: ids.length === body.limit ? ids.at(-1)! : null }, 202);
  },
);

route(
  admin,
  createRoute({
    method: "post",
    path: "/read-model/rebuild",
    summary: "Rebuild the payments list from Cosmos's change feed, one page per call (admin key)",
    security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: z.strictObject({ continuation: z.string().max(100_000).regex(rebuildContinuation, "not a continuation this route returned").nullable().optional() }) } }, required: false } },
    responses: {
      200: {
        description: "One page rebuilt; call again with the continuation until it is null",
        content: { "application/json": { schema: z.object({ payments: z.number(), continuation: z.string().nullable() }) } },
      },
      ...problems(413, 415),
    },
  }),
  async (c) => {
    const body = (c.req.valid("json") ?? {}) as { continuation?: string | null };
    const { store, config } = services(c.env);
    return c.json(await rebuildPage(c.env.READ_MODEL, store, body.continuation ?? null, config.LEGACY_MERCHANT_ID), 200);
  },
);

route(
  admin,
  createRoute({
    method: "get",
    path: "/payments/{id}/relay",
    summary: "Where the payment's relay stands: versions committed, sent, and not yet confirmed delivered (admin key)",
    security: [{ bearer: [] }],
    request: { params: paymentIdParam },
    responses: {
      200: {
        description: "Relay status",
        content: { "application/json": { schema: z.object({ version: z.number(), relayedVersion: z.number(), undelivered: z.array(z.number()) }) } },
      },
      ...problems(404),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    return answer(c, await c.env.PAYMENTS.getByName(id).relayStatus(id));
  },
);
