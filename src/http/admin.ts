// Operator routes (admin key): re-drive a stalled or stuck payment.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./app.ts";
import { route } from "./payments.ts";
import { answer } from "./reply.ts";
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
