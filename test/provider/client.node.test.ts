// The provider client against the real simulator: which refusals are final and which are worth retrying.
import { createServer, type ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { provider, type ProviderSettings } from "../../src/provider/client.ts";
import { useSimulator } from "./simulator.ts";

const sim = useSimulator();
const settings = (): ProviderSettings => ({ providerUrl: sim.url, notificationUrl: sim.url, timeoutMs: 5_000, webhookSecret: "whsec_test" });

/** Not the provider: something in front of it (a proxy, a gateway, a wrong URL) answering every call with `reply`. */
let reply: (res: ServerResponse) => void = (res) => res.end();
const impostor = createServer((req, res) => req.resume().on("end", () => reply(res)));
beforeAll(() => new Promise<void>((listening) => impostor.listen(0, "127.0.0.1", listening)));
afterAll(() => new Promise<void>((closed) => (impostor.closeAllConnections(), impostor.close(() => closed()))));
const before = (): ProviderSettings => ({ ...settings(), providerUrl: `http://127.0.0.1:${(impostor.address() as { port: number }).port}`, timeoutMs: 200 });

describe("the provider client", () => {
  it("retries the same key while its first request is under way (409 idempotency_key_in_use), then gets its outcome", async () => {
    // The first call is held unanswered until the test lets it go: it is still processing that key, however slow the machine.
    await sim.post("/_sim/settings", { hold: ["create"] });
    const key = crypto.randomUUID();
    const first = provider.create(settings(), key, 12.34, "GBP");
    await vi.waitFor(async () => expect((await sim.get("/_sim/under-way")).body).toEqual([`POST /psp/api/payments/create ${key}`]), { timeout: 5_000, interval: 5 });
    const meanwhile = await provider.create(settings(), key, 12.34, "GBP");
    expect(meanwhile).toEqual({ ok: false, permanent: false, reason: "idempotency_key_in_use" });
    await sim.post("/_sim/settings", { hold: [] });
    const created = await first;
    expect(created.ok).toBe(true);
    expect(await provider.create(settings(), key, 12.34, "GBP")).toEqual(created);
    expect((await sim.get("/_sim/payments")).body.filter((p: { amount: number }) => p.amount === 12.34)).toHaveLength(1);
  });

  it.each([401, 403, 408, 429, 500, 503])("takes a %i as transient: it is the provider's or the operator's trouble, not the payer's", async (status) => {
    await sim.post("/_sim/settings", { failNext: { route: "create", count: 1, status } });
    expect(await provider.create(settings(), crypto.randomUUID(), 1, "GBP")).toMatchObject({ ok: false, permanent: false });
  });

  it.each([
    ["a decline (402)", { declines: [{ route: "create", amountEquals: 2, code: "card_declined" }] }, 2, "card_declined"],
    ["an invalid request (400)", {}, 0.001, "invalid_request"],
  ])("takes %s as final", async (_case, patch, amount, reason) => {
    await sim.post("/_sim/settings", patch);
    expect(await provider.create(settings(), crypto.randomUUID(), amount, "GBP")).toEqual({ ok: false, permanent: true, reason });
  });

  it.each([
    ["a page without the provider's code (404)", (res: ServerResponse) => res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>"), "provider_status_404"],
    ["a 405 in JSON without a code", (res: ServerResponse) => res.writeHead(405, { "content-type": "application/json" }).end('{"message":"method not allowed"}'), "provider_status_405"],
    ["a success without the provider's payment id", (res: ServerResponse) => res.writeHead(200, { "content-type": "application/json" }).end("{}"), "provider_unreadable_answer"],
    ["a success that is not JSON", (res: ServerResponse) => res.writeHead(200, { "content-type": "text/html" }).end("<p>ok</p>"), "provider_unreadable_answer"],
  ])("retries %s: it is not the provider's answer to this request, so it never fails a payment for good", async (_case, answer, reason) => {
    reply = answer;
    expect(await provider.create(before(), crypto.randomUUID(), 4, "GBP")).toEqual({ ok: false, permanent: false, reason });
  });

  it("takes a refund answered without the provider's refund id as not done yet", async () => {
    reply = (res) => res.writeHead(201, { "content-type": "application/json" }).end('{"status":"succeeded"}');
    expect(await provider.refund(before(), crypto.randomUUID(), "pay_1", 1)).toEqual({ ok: false, permanent: false, reason: "provider_unreadable_answer" });
  });

  it("answers a timeout, never throws, when the answer's body stalls after its headers", async () => {
    reply = (res) => res.writeHead(200, { "content-type": "application/json" }).write('{"paymentId":');
    expect(await provider.create(before(), crypto.randomUUID(), 5, "GBP")).toEqual({ ok: false, permanent: false, reason: "provider_timeout" });
  });

  it("gives a stable code, never the runtime's error text, when the provider times out or cannot be reached", async () => {
    await sim.post("/_sim/settings", { latencyMs: 300 });
    expect(await provider.create({ ...settings(), timeoutMs: 50 }, crypto.randomUUID(), 3, "GBP")).toEqual({ ok: false, permanent: false, reason: "provider_timeout" });
    const closed = { ...settings(), providerUrl: "http://127.0.0.1:1" };
    expect(await provider.create(closed, crypto.randomUUID(), 3, "GBP")).toEqual({ ok: false, permanent: false, reason: "provider_unreachable" });
  });
});
