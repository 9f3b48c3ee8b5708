// Operator routes (admin key): re-drive a stalled or stuck payment.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./app.ts";
import { route } from "./payments.ts";
import { answer } from "./reply.ts";
import { rebuildPage } from "../readModel/payments.ts";
import { services } from "../wiring.ts";
import { paymentIdParam } from "./schemas.ts";

export const admin = new OpenAPIHono<AppEnv>();

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
      404: { description: "application/problem+json, see Problem" },
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    return answer(c, await c.env.PAYMENTS.getByName(id).redrive(id));
  },
);

route(
  admin,
  createRoute({
    method: "post",
    path: "/read-model/rebuild",
    summary: "Rebuild the payments list from Cosmos's change feed, one page per call (admin key)",
    security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: z.strictObject({ continuation: z.string().max(10_000).nullable().optional() }) } }, required: false } },
    responses: {
      200: {
        description: "One page rebuilt; call again with the continuation until it is null",
        content: { "application/json": { schema: z.object({ payments: z.number(), continuation: z.string().nullable() }) } },
      },
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
      404: { description: "application/problem+json, see Problem" },
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    return answer(c, await c.env.PAYMENTS.getByName(id).relayStatus(id));
  },
);
