// Live updates: a ticket for the payment's WebSocket, and the WebSocket itself, accepted by the payment's object.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./app.ts";
import { problem, rateLimited } from "./problems.ts";
import { route } from "./payments.ts";
import { paymentIdParam, problemResponses } from "./schemas.ts";
import { signTicket, verifyTicket } from "./tickets.ts";

export const live = new OpenAPIHono<AppEnv>();

// Without the tickets' secret (a deployment upgraded before it was put) only live updates are unavailable.
live.use("/payments/:id/live*", async (c, next) => {
  if (!c.get("config").LIVE_TICKET_SECRET) return problem(c, "service_unavailable", { detail: "live updates are not configured on this deployment", retryAfterSeconds: 60 });
  await next();
});

route(
  live,
  createRoute({
    method: "post",
    path: "/payments/{id}/live-tickets",
    summary: "A short-lived ticket for the payment's live WebSocket",
    security: [{ bearer: [] }],
    request: { params: paymentIdParam },
    responses: {
      201: { description: "The ticket", content: { "application/json": { schema: z.object({ ticket: z.string(), expiresAt: z.string() }) } } },
      // 503: live updates are not configured on this deployment (no LIVE_TICKET_SECRET).
      ...problemResponses(400, 401, 404, 413, 415, 429, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const owned = await c.env.PAYMENTS.getByName(id).get(c.get("caller"), id);
    if (!owned.ok) return problem(c, owned.code, { detail: owned.message });
    const expiresAt = Date.now() + c.get("config").LIVE_TICKET_TTL_SECONDS * 1000;
    const ticket = await signTicket(c.get("config").LIVE_TICKET_SECRET!, { paymentId: id, merchantId: c.get("caller").merchantId, expiresAt });
    return c.json({ ticket, expiresAt: new Date(expiresAt).toISOString() }, 201);
  },
);

live.openAPIRegistry.registerPath({
  method: "get",
  path: "/payments/{id}/live",
  summary: "The payment's live WebSocket (a ticket, no API key): a hello with the payment, then each event as it commits",
  request: { params: paymentIdParam, query: z.object({ ticket: z.string().openapi({ description: "From POST /payments/{id}/live-tickets" }) }) },
  responses: { 101: { description: "Switching Protocols: the WebSocket" }, ...problemResponses(401, 404, 426, 429, 503) },
});
/** Reached without a key (see the auth middleware): the ticket is the credential. */
live.get("/payments/:id/live", async (c) => {
  const ticket = await verifyTicket(c.get("config").LIVE_TICKET_SECRET!, c.req.query("ticket") ?? "", Date.now());
  const id = c.req.param("id").toLowerCase();
  // A ticket of a merchant no longer configured (its keys revoked) is refused, as its key would be.
  if (!ticket || ticket.paymentId !== id || !Object.hasOwn(c.get("config").MERCHANT_KEYS, ticket.merchantId))
    return problem(c, "unauthorized", { detail: "a valid live ticket for this payment is required" });
  const limited = await rateLimited(c, ticket.merchantId); // the ticket's merchant, as its key would be
  if (limited) return limited;
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return problem(c, "upgrade_required");
  const headers = new Headers(c.req.raw.headers);
  headers.set("x-merchant-id", ticket.merchantId);
  headers.set("x-payment-id", id);
  const res = await c.env.PAYMENTS.getByName(id).fetch(new Request(c.req.raw, { headers }));
  return res.status === 101 ? res : problem(c, "payment_not_found", { detail: "no such payment" });
});
