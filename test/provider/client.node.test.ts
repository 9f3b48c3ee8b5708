// The provider client against the real simulator: which refusals are final and which are worth retrying.
import { describe, expect, it } from "vitest";
import { provider, type ProviderSettings } from "../../src/provider/client.ts";
import { useSimulator } from "./simulator.ts";

const sim = useSimulator();
const settings = (): ProviderSettings => ({ providerUrl: sim.url, notificationUrl: sim.url, timeoutMs: 5_000, webhookSecret: "whsec_test" });

describe("the provider client", () => {
  it("retries the same key while its first request is under way (409 idempotency_key_in_use), then gets its outcome", async () => {
    await sim.post("/_sim/settings", { latencyMs: 300 });
    const key = crypto.randomUUID();
    const first = provider.create(settings(), key, 12.34, "GBP");
    // Sent while the first waits out its latency: the simulator is still processing that key.
    await new Promise((r) => setTimeout(r, 50));
    const meanwhile = await provider.create(settings(), key, 12.34, "GBP");
    expect(meanwhile).toEqual({ ok: false, permanent: false, reason: "idempotency_key_in_use" });
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

  it("gives a stable code, never the runtime's error text, when the provider times out or cannot be reached", async () => {
    await sim.post("/_sim/settings", { latencyMs: 300 });
    expect(await provider.create({ ...settings(), timeoutMs: 50 }, crypto.randomUUID(), 3, "GBP")).toEqual({ ok: false, permanent: false, reason: "provider_timeout" });
    const closed = { ...settings(), providerUrl: "http://127.0.0.1:1" };
    expect(await provider.create(closed, crypto.randomUUID(), 3, "GBP")).toEqual({ ok: false, permanent: false, reason: "provider_unreachable" });
  });
});
