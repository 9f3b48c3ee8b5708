import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { signTicket } from "../../src/http/tickets.ts";
import { api, createPayment, waitForPayment, type Json } from "../helpers.ts";
import { keys, ticketSecret, webhookSecret } from "../setup/constants.ts";

/** The real rate-limit binding with a limit of one (see vitest.config.ts), spent for `key`: its next call is refused. */
async function spentFor(key: string): Promise<RateLimit> {
  const spent = (env as unknown as { SPENT_RATE_LIMIT: RateLimit }).SPENT_RATE_LIMIT;
  for (let calls = 0; (await spent.limit({ key })).success; calls++) expect(calls).toBeLessThan(2);
  return spent;
}

async function connect(id: string, ticket: string) {
  const res = await exports.default.fetch(`http://pay.test/api/payments/${id}/live?ticket=${encodeURIComponent(ticket)}`, { headers: { upgrade: "websocket" } });
  return res;
}

describe("live updates", () => {
  it("push every committed event of the payment over a WebSocket opened with a ticket", async () => {
    const payment = await createPayment({ amount: 31, currency: "GBP" });
    const ticket = await api(`/api/payments/${payment.id}/live-tickets`, { method: "POST" });
    expect(ticket).toMatchObject({ status: 201, body: { ticket: expect.any(String), expiresAt: expect.any(String) } });
    const res = await connect(payment.id, ticket.body.ticket);
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const messages: Json[] = [];
    ws.addEventListener("message", (m) => messages.push(JSON.parse(String(m.data))));
    ws.accept();
    await vi.waitFor(() => expect(messages.some((m) => m.type === "event" && m.event.eventType === "PaymentCompleted")).toBe(true), { timeout: 15_000, interval: 20 });
    expect(messages[0]).toMatchObject({ type: "hello", payment: { id: payment.id } });
    // Each event after the one the greeting showed, once and in order.
    const greeted = messages[0]!.payment.version as number;
    const seen = messages.filter((m) => m.type === "event").map((m) => m.event.stream.version);
    expect(seen).toEqual(Array.from({ length: 4 - greeted }, (_, i) => greeted + 1 + i));
    expect(messages.at(-1)!.payment.status).toBe("completed");
    ws.close();
  });

  it("refuses a missing, forged, expired or another payment's ticket, one signed with the webhook secret or for a merchant not configured, and a plain GET", async () => {
    const payment = await createPayment({ amount: 32, currency: "GBP" });
    const other = await createPayment({ amount: 33, currency: "GBP" });
    const otherTicket = (await api(`/api/payments/${other.id}/live-tickets`, { method: "POST" })).body.ticket;
    const expired = await signTicket(ticketSecret, { paymentId: payment.id, merchantId: "merchant-a", expiresAt: Date.now() - 1 });
    const forged = await signTicket("not-the-secret-at-all", { paymentId: payment.id, merchantId: "merchant-a", expiresAt: Date.now() + 60_000 });
    // Whoever checks notifications holds the webhook secret: it must not mint tickets.
    const byReceiver = await signTicket(webhookSecret, { paymentId: payment.id, merchantId: "merchant-a", expiresAt: Date.now() + 60_000 });
    // A merchant no longer configured (its keys revoked): its tickets go with its keys.
    const revoked = await signTicket(ticketSecret, { paymentId: payment.id, merchantId: "merchant-gone", expiresAt: Date.now() + 60_000 });
    for (const t of ["", "garbage", otherTicket, expired, forged, byReceiver, revoked]) expect((await connect(payment.id, t)).status).toBe(401);
    const good = (await api(`/api/payments/${payment.id}/live-tickets`, { method: "POST" })).body.ticket;
    const plain = await api(`/api/payments/${payment.id}/live?ticket=${encodeURIComponent(good)}`, { key: null });
    expect(plain.status).toBe(426);
    expect(plain.headers.get("upgrade")).toBe("websocket");
    expect((await api(`/api/payments/${payment.id}/live-tickets`, { method: "POST", key: keys.merchantB })).status).toBe(404);
  });
});

describe("a live ticket's request", () => {
  it("answers an oversized or non-JSON body with the 413 and 415 its OpenAPI document lists", async () => {
    const payment = await createPayment({ amount: 37, currency: "GBP" });
    const path = `/api/payments/${payment.id}/live-tickets`;
    const listed = Object.keys((await api("/openapi.json", { key: null })).body.paths["/api/payments/{id}/live-tickets"].post.responses);
    expect(listed).toEqual(expect.arrayContaining(["413", "415"]));
    expect((await api(path, { method: "POST", body: "x", headers: { "content-type": "text/plain" } })).status).toBe(415);
    expect((await api(path, { method: "POST", body: JSON.stringify({ a: "x".repeat(200_000) }) })).status).toBe(413);
  });
});

describe("a live socket", () => {
  it("is closed (4001) once its life is over, so that its client must present a fresh ticket", async () => {
    const payment = await createPayment({ amount: 34, currency: "GBP" });
    const res = await connect(payment.id, (await api(`/api/payments/${payment.id}/live-tickets`, { method: "POST" })).body.ticket);
    const ws = res.webSocket!;
    const heard: string[] = [];
    let closed: number | null = null;
    ws.addEventListener("message", (m) => heard.push(String(m.data)));
    ws.addEventListener("close", (e) => (closed = e.code));
    ws.accept();
    ws.send("ping");
    await vi.waitFor(() => expect(heard).toContain("pong"), { timeout: 5_000, interval: 20 });
    // Its life (LIVE_SOCKET_MAX_SECONDS) runs out.
    await runInDurableObject(env.PAYMENTS.getByName(payment.id), (_, state) => {
      for (const socket of state.getWebSockets()) socket.serializeAttachment({ closesAt: Date.now() - 1, pingedAt: 0 }); // its last ping long ago
    });
    const pongs = heard.filter((m) => m === "pong").length;
    ws.send("ping");
    await vi.waitFor(() => expect(closed).toBe(4001), { timeout: 5_000, interval: 20 });
    expect(heard.filter((m) => m === "pong").length).toBe(pongs);
  });

  it("is closed (1008) when it sends anything but a ping, or pings again sooner than LIVE_PING_MIN_MS", async () => {
    const payment = await createPayment({ amount: 38, currency: "GBP" });
    const open = async () => {
      const ws = (await connect(payment.id, (await api(`/api/payments/${payment.id}/live-tickets`, { method: "POST" })).body.ticket)).webSocket!;
      const heard: string[] = [];
      const closed = { code: 0 };
      ws.addEventListener("message", (m) => heard.push(String(m.data)));
      ws.addEventListener("close", (e) => (closed.code = e.code));
      ws.accept();
      return { ws, heard, closed };
    };
    const chatty = await open();
    chatty.ws.send("anything");
    await vi.waitFor(() => expect(chatty.closed.code).toBe(1008), { timeout: 5_000, interval: 20 });
    const eager = await open();
    eager.ws.send("ping");
    await vi.waitFor(() => expect(eager.heard).toContain("pong"), { timeout: 5_000, interval: 20 });
    eager.ws.send("ping"); // at once: the default interval is 5 s
    await vi.waitFor(() => expect(eager.closed.code).toBe(1008), { timeout: 5_000, interval: 20 });
    expect(eager.heard.filter((m) => m === "pong")).toHaveLength(1);
  });

  it("is refused once the ticket's merchant has spent its rate limit", async () => {
    const payment = { id: crypto.randomUUID() }; // refused before the payment is looked up
    const ticket = await signTicket(ticketSecret, { paymentId: payment.id, merchantId: "merchant-a", expiresAt: Date.now() + 60_000 });
    const { app } = await import("../../src/http/app.ts");
    const limited = { ...env, MERCHANT_RATE_LIMIT: await spentFor("merchant-a") };
    const res = await app.fetch(new Request(`http://pay.test/api/payments/${payment.id}/live?ticket=${encodeURIComponent(ticket)}`, { headers: { upgrade: "websocket" } }), limited);
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: "rate_limited" });
  });
});

describe("a deployment without LIVE_TICKET_SECRET", () => {
  it("answers 503 on the live routes only, and keeps taking payments", async () => {
    const { app } = await import("../../src/http/app.ts");
    const { LIVE_TICKET_SECRET: _, ...unset } = env;
    const call = (path: string, init: RequestInit = {}) =>
      app.fetch(new Request(`http://pay.test${path}`, { ...init, headers: { authorization: `Bearer ${keys.merchantA}`, "content-type": "application/json", ...init.headers } }), unset as unknown as Env);
    const created = await call("/api/payments", { method: "POST", body: JSON.stringify({ amount: 36, currency: "GBP" }) });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    for (const res of [await call(`/api/payments/${id}/live-tickets`, { method: "POST" }), await call(`/api/payments/${id}/live?ticket=x`, { headers: { upgrade: "websocket" } })]) {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("60");
      expect(await res.json()).toMatchObject({ code: "service_unavailable", detail: "live updates are not configured on this deployment" });
    }
    await waitForPayment(id, (p) => p.status === "completed");
  });
});

describe("rate limits", () => {
  it("answer 429 with Retry-After once the merchant's limit is spent", async () => {
    const { app } = await import("../../src/http/app.ts");
    const { env } = await import("cloudflare:workers");
    const limited = { ...env, MERCHANT_RATE_LIMIT: await spentFor("merchant-a") };
    const res = await app.fetch(new Request(`http://pay.test/api/payments/${crypto.randomUUID()}`, { headers: { authorization: `Bearer ${keys.merchantA}` } }), limited);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe(env.RATE_LIMIT_PERIOD_SECONDS);
    expect(await res.json()).toMatchObject({ code: "rate_limited", status: 429 });
  });
});
