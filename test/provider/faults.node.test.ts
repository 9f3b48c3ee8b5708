// Fault injection of the provider simulator: toggle-errors, seeded error and timeout rates, failNext, declines, latency.
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startProviderSimulator } from "../../scripts/provider/server.ts";
import { type Answer, keyed, settledPayment, useSimulator } from "./simulator.ts";

const sim = useSimulator();
const create = "/psp/api/payments/create";
const payment = { amount: 25, currency: "GBP" };
const outcomes = async () => (await sim.get("/_sim/calls")).body.map((call: { outcome: string }) => call.outcome);

describe("POST /toggle-errors", () => {
  it("makes every PSP and notification route answer 500 until toggled back", async () => {
    const paymentId = await settledPayment(sim, 10);

    const on = await sim.post("/toggle-errors");
    const failing = await Promise.all([
      sim.post(create, payment),
      sim.post(`/psp/api/payments/${paymentId}/settle`),
      sim.post(`/psp/api/payments/${paymentId}/cancel`),
      sim.post(`/psp/api/payments/${paymentId}/refunds`, { amount: 1 }),
      sim.post("/notifications/api/send", { id: "x", jsonPayload: "{}" }),
    ]);
    const off = await sim.post("/toggle-errors");

    expect(on.body).toEqual({ errors: true });
    expect(failing.map((answer) => answer.status)).toEqual([500, 500, 500, 500, 500]);
    expect(failing[0]?.body).toEqual({ code: "simulated_error", message: expect.any(String) });
    expect(off.body).toEqual({ errors: false });
    expect((await sim.post(create, payment)).status).toBe(202);
  });

  it("leaves the control plane and health answering", async () => {
    await sim.post("/toggle-errors");

    expect((await sim.get("/health")).status).toBe(200);
    expect((await sim.get("/_sim/settings")).body.errors).toBe(true);
  });

  it("does not consume the Idempotency-Key of a failed call", async () => {
    await sim.post("/toggle-errors");
    const failed = await sim.post(create, payment, keyed("k"));
    await sim.post("/toggle-errors");

    const retried = await sim.post(create, payment, keyed("k"));

    expect([failed.status, retried.status]).toEqual([500, 202]);
    expect(await outcomes()).toEqual(["error", "ok"]);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
  });
});

describe("with an error rate and a seed", () => {
  const run = async (seed: number) => {
    await sim.post("/_sim/settings", { seed, errorRate: 0.5 });
    const statuses = [];
    for (let i = 0; i < 24; i++) statuses.push((await sim.post(create, payment)).status);
    return statuses;
  };

  it("answers 500 or 503 for some calls and replays the same sequence for the same seed", async () => {
    const first = await run(42);
    const replay = await run(42);
    const otherSeed = await run(7);

    expect(replay).toEqual(first);
    expect(otherSeed).not.toEqual(first);
    expect(new Set(first)).toEqual(new Set([202, 500, 503]));
  });

  it("answers errorStatus when set", async () => {
    await sim.post("/_sim/settings", { seed: 3, errorRate: 1, errorStatus: 502 });

    expect((await sim.post(create, payment)).status).toBe(502);
  });

  it("lets retries with the same key create the payment once", async () => {
    // seed 7 fails the first call
    await sim.post("/_sim/settings", { seed: 7, errorRate: 0.5 });
    const statuses: number[] = [];
    let created: Answer | undefined;
    while (!created && statuses.length < 50) {
      const answer = await sim.post(create, payment, keyed("retry-me"));
      statuses.push(answer.status);
      if (answer.status === 202) created = answer;
    }
    await sim.post("/_sim/settings", { errorRate: 0 });
    const again = await sim.post(create, payment, keyed("retry-me"));

    expect(statuses.length).toBeGreaterThan(1);
    expect(again).toEqual(created);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
  });
});

describe("failNext", () => {
  it("fails the next calls of the named route, then answers normally", async () => {
    const { body } = await sim.post(create, payment);
    await sim.post("/_sim/settings", { failNext: { route: "settle", count: 2, status: 503 } });

    const other = await sim.post(create, payment);
    const settles = [];
    for (let i = 0; i < 3; i++) settles.push((await sim.post(`/psp/api/payments/${body.paymentId}/settle`)).status);

    expect(other.status).toBe(202);
    expect(settles).toEqual([503, 503, 200]);
    expect((await sim.get("/_sim/settings")).body.failNext).toBeNull();
  });

  it("fails any route with 500 when no route or status is given", async () => {
    await sim.post("/_sim/settings", { failNext: { count: 1 } });

    const failed = await sim.post("/notifications/api/send", { id: "x", jsonPayload: "{}" });

    expect(failed.status).toBe(500);
    expect((await sim.post("/notifications/api/send", { id: "x", jsonPayload: "{}" })).status).toBe(200);
  });

  it("holds the next calls of the route unanswered with status \"timeout\", then answers normally", async () => {
    await sim.post("/_sim/settings", { failNext: { route: "notify", count: 1, status: "timeout" } });

    const giveUp = new AbortController();
    const held = fetch(`${sim.url}/notifications/api/send`, { method: "POST", body: JSON.stringify({ id: "x", jsonPayload: "{}" }), signal: giveUp.signal });
    await vi.waitFor(async () => expect(await outcomes()).toEqual(["timeout"]), { timeout: 5_000, interval: 10 });
    giveUp.abort();
    await expect(held).rejects.toThrow(/abort/i);
    const next = await sim.post("/notifications/api/send", { id: "x", jsonPayload: "{}" });

    expect(next.status).toBe(200);
    expect(await outcomes()).toEqual(["timeout", "ok"]);
    expect((await sim.get("/_sim/settings")).body.failNext).toBeNull();
  });
});

describe("decline rules", () => {
  it("declines a create matching amountEquals with the rule's code and reason, permanently for its key", async () => {
    await sim.post("/_sim/settings", {
      declines: [{ route: "create", amountEquals: 13.13, code: "insufficient_funds", reason: "not enough money" }],
    });

    const declined = await sim.post(create, { amount: 13.13, currency: "GBP" }, keyed("d"));
    await sim.post("/_sim/settings", { declines: [] });
    const again = await sim.post(create, { amount: 13.13, currency: "GBP" }, keyed("d"));
    const other = await sim.post(create, { amount: 13.14, currency: "GBP" });

    expect(declined).toEqual({ status: 402, body: { code: "insufficient_funds", message: "not enough money" } });
    expect(again).toEqual(declined);
    expect(other.status).toBe(202);
    expect(await outcomes()).toEqual(["declined", "declined", "ok"]);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
  });

  it("declines by amountGte and currency with card_declined by default", async () => {
    await sim.post("/_sim/settings", { declines: [{ amountGte: 1000, currency: "EUR" }] });

    const statuses = await Promise.all(
      [
        { amount: 1000, currency: "EUR" },
        { amount: 5000, currency: "EUR" },
        { amount: 999.99, currency: "EUR" },
        { amount: 1000, currency: "GBP" },
      ].map(async (body) => (await sim.post(create, body)).status),
    );

    expect(statuses).toEqual([402, 402, 202, 202]);
    expect((await sim.post(create, { amount: 1000, currency: "EUR" })).body.code).toBe("card_declined");
  });

  it("declines a settle and keeps the payment declined after the rule is removed", async () => {
    const { body } = await sim.post(create, { amount: 66.6, currency: "USD" });
    await sim.post("/_sim/settings", { declines: [{ route: "settle", amountEquals: 66.6 }] });

    const first = await sim.post(`/psp/api/payments/${body.paymentId}/settle`);
    await sim.post("/_sim/settings", { declines: [] });
    const again = await sim.post(`/psp/api/payments/${body.paymentId}/settle`);

    expect(first.status).toBe(402);
    expect(again).toEqual(first);
    expect((await sim.get("/_sim/payments")).body[0].status).toBe("declined");
  });

  it("declines a refund without recording it", async () => {
    const paymentId = await settledPayment(sim, 50);
    await sim.post("/_sim/settings", { declines: [{ route: "refund", amountGte: 40 }] });

    const declined = await sim.post(`/psp/api/payments/${paymentId}/refunds`, { amount: 45 });
    const allowed = await sim.post(`/psp/api/payments/${paymentId}/refunds`, { amount: 39.99 });

    expect([declined.status, allowed.status]).toEqual([402, 201]);
    expect((await sim.get("/_sim/payments")).body[0].refundedAmount).toBe(39.99);
  });
});

describe("with a timeout rate", () => {
  it("holds the request until the client gives up and leaves the key free for a retry", async () => {
    await sim.post("/_sim/settings", { timeoutRate: 1 });
    const giveUp = new AbortController();

    const held = fetch(`${sim.url}${create}`, {
      method: "POST",
      headers: keyed("slow"),
      body: JSON.stringify(payment),
      signal: giveUp.signal,
    });
    await vi.waitFor(async () => expect(await outcomes()).toEqual(["timeout"]), { timeout: 5_000, interval: 10 });
    giveUp.abort();
    await expect(held).rejects.toThrow(/abort/i);
    await sim.post("/_sim/settings", { timeoutRate: 0 });
    const retried = await sim.post(create, payment, keyed("slow"));

    expect(retried.status).toBe(202);
    expect((await sim.get("/_sim/calls")).body).toMatchObject([
      { route: "create", idempotencyKey: "slow", status: null, outcome: "timeout" },
      { route: "create", idempotencyKey: "slow", status: 202, outcome: "ok" },
    ]);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
  });

  it("answers a client that gives up with nothing, and close() releases held requests", async () => {
    const own = await startProviderSimulator({ port: 0 });
    onTestFinished(() => own.close());
    await fetch(`${own.url}/_sim/settings`, { method: "POST", body: JSON.stringify({ timeoutRate: 1 }) });

    const calls = async () => (await (await fetch(`${own.url}/_sim/calls`)).json()) as unknown[];
    const giveUp = new AbortController();
    const abandoned = fetch(`${own.url}${create}`, { method: "POST", body: JSON.stringify(payment), signal: giveUp.signal });
    // Given up once the simulator holds it (not after a fixed time, which a slow machine could spend before sending it).
    await vi.waitFor(async () => expect(await calls()).toHaveLength(1), { timeout: 5_000, interval: 10 });
    giveUp.abort();
    const held = fetch(`${own.url}${create}`, { method: "POST", body: JSON.stringify(payment) });
    await expect(abandoned).rejects.toThrow();
    await vi.waitFor(async () => expect(await calls()).toHaveLength(2), { timeout: 5_000, interval: 10 });
    await own.close();

    await expect(held).rejects.toThrow();
  });
});

describe("with latency", () => {
  it("delays answers by at least latencyMs", async () => {
    await sim.post("/_sim/settings", { latencyMs: 120 });

    const started = performance.now();
    const answer = await sim.post(create, payment);

    expect(answer.status).toBe(202);
    expect(performance.now() - started).toBeGreaterThanOrEqual(110);
  });
});
