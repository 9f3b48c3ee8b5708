// Control plane of the provider simulator (/_sim): call records, payments, settings, reset, and exact route matching.
import { describe, expect, it, vi } from "vitest";
import { keyed, useSimulator } from "./simulator.ts";

const sim = useSimulator();
const create = "/psp/api/payments/create";

describe("GET /_sim/calls", () => {
  it("records every PSP and notification call in order with its answer", async () => {
    const created = await sim.post(create, { amount: 30, currency: "GBP" }, keyed("order-9"));
    const { paymentId } = created.body;
    await sim.post(`/psp/api/payments/${paymentId}/settle`);
    const refund = await sim.post(`/psp/api/payments/${paymentId}/refunds`, { amount: 0.3 });
    await sim.post(`/psp/api/payments/${paymentId}/cancel`);
    await sim.post("/notifications/api/send", { id: paymentId, jsonPayload: "{}" });

    const calls = (await sim.get("/_sim/calls")).body;

    expect(calls).toEqual([
      {
        seq: 1,
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        method: "POST",
        path: create,
        route: "create",
        idempotencyKey: "order-9",
        body: { amount: 30, currency: "GBP" },
        status: 202,
        outcome: "ok",
        paymentId,
      },
      expect.objectContaining({ seq: 2, route: "settle", idempotencyKey: null, body: null, status: 200, paymentId }),
      expect.objectContaining({
        seq: 3,
        route: "refund",
        body: { amount: 0.3 },
        status: 201,
        paymentId,
        refundId: refund.body.refundId,
      }),
      expect.objectContaining({ seq: 4, route: "cancel", status: 409, outcome: "rejected", paymentId }),
      expect.objectContaining({ seq: 5, route: "notify", status: 200, outcome: "ok" }),
    ]);
  });

  it("records a body that is not JSON as its text", async () => {
    await sim.post(create, "amount=1");

    expect((await sim.get("/_sim/calls")).body).toMatchObject([{ body: "amount=1", status: 400, outcome: "rejected" }]);
  });

  it("does not record control-plane, health or unknown-route calls", async () => {
    await sim.get("/health");
    await sim.get("/_sim/settings");
    await sim.post("/toggle-errors");
    await sim.post("/psp/api/payments");

    expect((await sim.get("/_sim/calls")).body).toEqual([]);
  });

  it("is emptied by DELETE, leaving payments alone", async () => {
    await sim.post(create, { amount: 1, currency: "GBP" });

    const cleared = await sim.request("DELETE", "/_sim/calls");

    expect(cleared).toEqual({ status: 200, body: { cleared: 1 } });
    expect((await sim.get("/_sim/calls")).body).toEqual([]);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
  });
});

describe("GET /_sim/payments", () => {
  it("lists provider payments with status, refunds and the key that created them", async () => {
    const { body } = await sim.post(create, { amount: 12.5, currency: "EUR" }, keyed("k1"));
    await sim.post(`/psp/api/payments/${body.paymentId}/settle`);
    await sim.post(`/psp/api/payments/${body.paymentId}/refunds`, { amount: 2.5 }, keyed("r1"));

    expect((await sim.get("/_sim/payments")).body).toEqual([
      {
        paymentId: body.paymentId,
        amount: 12.5,
        currency: "EUR",
        status: "settled",
        createdAt: expect.any(String),
        idempotencyKey: "k1",
        refundedAmount: 2.5,
        refunds: [
          { refundId: expect.any(String), amount: 2.5, status: "succeeded", createdAt: expect.any(String), idempotencyKey: "r1" },
        ],
      },
    ]);
  });
});

describe("settings", () => {
  const defaults = {
    latencyMs: 0,
    errorRate: 0,
    errorStatus: null,
    timeoutRate: 0,
    failNext: null,
    declines: [],
    seed: 1,
    errors: false,
    hold: [],
  };

  it("start at the defaults", async () => {
    expect((await sim.get("/_sim/settings")).body).toEqual(defaults);
  });

  it("merge a posted patch into the current settings", async () => {
    await sim.post("/_sim/settings", { latencyMs: 5 });
    const merged = await sim.post("/_sim/settings", { errorRate: 0.25, failNext: { count: 2 } });

    expect(merged.body).toEqual({ ...defaults, latencyMs: 5, errorRate: 0.25, failNext: { count: 2, status: 500 } });
    expect((await sim.get("/_sim/settings")).body).toEqual(merged.body);
  });

  it.each([
    ["a rate above 1", { errorRate: 1.5 }],
    ["an unknown setting", { errorRates: 0.5 }],
    ["a decline rule for an unknown route", { declines: [{ route: "cancel" }] }],
    ["a failNext without a count", { failNext: { route: "settle" } }],
    ["a body that is not an object", [1]],
  ])("reject %s with 400 and change nothing", async (_case, patch) => {
    const answer = await sim.post("/_sim/settings", patch);

    expect(answer).toEqual({ status: 400, body: { code: "invalid_settings", message: expect.any(String) } });
    expect((await sim.get("/_sim/settings")).body).toEqual(defaults);
  });
});

describe("holding a route", () => {
  it("keeps its calls unanswered, under way, until a settings change takes the route out; other routes answer", async () => {
    await sim.post("/_sim/settings", { hold: ["create"] });
    let answered = false;
    const held = sim.post(create, { amount: 3, currency: "GBP" }, keyed("held")).finally(() => (answered = true));
    await vi.waitFor(async () => expect((await sim.get("/_sim/under-way")).body).toEqual([`POST ${create} held`]), { timeout: 5_000, interval: 5 });
    expect((await sim.post("/psp/api/payments/pay_none/settle", {}, keyed("other"))).status).toBe(404);
    await sim.post("/_sim/settings", { latencyMs: 0 }); // another change: still held
    expect((await sim.get("/_sim/under-way")).body).toHaveLength(1);
    expect(answered).toBe(false);
    await sim.post("/_sim/settings", { hold: [] });
    expect((await held).status).toBe(202);
    expect((await sim.get("/_sim/under-way")).body).toEqual([]);
  });

  it("refuses a route it does not know", async () => {
    expect((await sim.post("/_sim/settings", { hold: ["lunch"] })).status).toBe(400);
  });
});

describe("POST /_sim/reset", () => {
  it("restores default settings and forgets payments, calls and idempotency keys", async () => {
    const before = await sim.post(create, { amount: 1, currency: "GBP" }, keyed("k"));
    await sim.post("/_sim/settings", { latencyMs: 1, declines: [{ amountEquals: 99 }] });
    await sim.post("/toggle-errors");

    await sim.post("/_sim/reset");
    const after = await sim.post(create, { amount: 1, currency: "GBP" }, keyed("k"));

    expect(after.status).toBe(202);
    expect(after.body.paymentId).not.toBe(before.body.paymentId);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
    expect((await sim.get("/_sim/calls")).body).toMatchObject([{ seq: 1, outcome: "ok" }]);
    expect((await sim.get("/_sim/settings")).body).toMatchObject({ latencyMs: 0, declines: [], errors: false });
  });
});

describe("routing", () => {
  it("answers GET /health with 200", async () => {
    expect((await sim.get("/health")).status).toBe(200);
  });

  it.each([
    ["GET", create],
    ["POST", `${create}/`],
    ["POST", "/psp/api/payments//settle"],
    ["POST", "/psp/api/payments/x/settle/now"],
    ["GET", "/toggle-errors"],
    ["PUT", "/_sim/settings"],
    ["POST", "/nothing"],
  ])("answers %s %s with a JSON 404", async (method, path) => {
    const answer = await sim.request(method, path);

    expect(answer).toEqual({ status: 404, body: { code: "not_found", message: expect.any(String) } });
  });
});
