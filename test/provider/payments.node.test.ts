// PSP routes of the provider simulator: create, settle, cancel and refund, with idempotency keys and exact amounts.
import { describe, expect, it } from "vitest";
import { keyed, settledPayment, useSimulator, uuid } from "./simulator.ts";

const sim = useSimulator();
const create = "/psp/api/payments/create";

describe("creating a payment", () => {
  it("answers 202 with a new payment id and holds one provider payment", async () => {
    const answer = await sim.post(create, { amount: 86.1, currency: "GBP" });

    expect(answer).toEqual({ status: 202, body: { paymentId: expect.stringMatching(uuid) } });
    const payments = await sim.get("/_sim/payments");
    expect(payments.body).toMatchObject([{ paymentId: answer.body.paymentId, amount: 86.1, currency: "GBP", status: "created" }]);
  });

  it("creates a new payment on every call without an Idempotency-Key", async () => {
    const first = await sim.post(create, { amount: 10, currency: "EUR" });
    const second = await sim.post(create, { amount: 10, currency: "EUR" });

    expect(first.body.paymentId).not.toBe(second.body.paymentId);
    expect((await sim.get("/_sim/payments")).body).toHaveLength(2);
  });

  it("accepts the minor units of each currency and rejects finer amounts", async () => {
    expect((await sim.post(create, { amount: 100, currency: "JPY" })).status).toBe(202);
    expect((await sim.post(create, { amount: 1.234, currency: "KWD" })).status).toBe(202);
    expect((await sim.post(create, { amount: 1.5, currency: "JPY" })).status).toBe(400);
    expect((await sim.post(create, { amount: 0.001, currency: "GBP" })).status).toBe(400);
  });

  it.each([
    ["a zero amount", { amount: 0, currency: "GBP" }],
    ["a negative amount", { amount: -5, currency: "GBP" }],
    ["an amount given as text", { amount: "10", currency: "GBP" }],
    ["an unknown currency", { amount: 10, currency: "YEN" }],
    ["a lower-case currency", { amount: 10, currency: "gbp" }],
    ["no currency", { amount: 10 }],
    ["a body that is not JSON", "amount=10"],
  ])("rejects %s with 400 and creates nothing", async (_case, body) => {
    const answer = await sim.post(create, body);

    expect(answer).toEqual({ status: 400, body: { code: "invalid_request", message: expect.any(String) } });
    expect((await sim.get("/_sim/payments")).body).toEqual([]);
  });

  describe("when the same Idempotency-Key is sent again", () => {
    it("answers the same status and body and creates no second payment", async () => {
      const first = await sim.post(create, { amount: 86.1, currency: "GBP" }, keyed("order-1"));
      const again = await sim.post(create, { currency: "GBP", amount: 86.1 }, keyed("order-1"));

      expect(again).toEqual(first);
      const payments = (await sim.get("/_sim/payments")).body;
      expect(payments).toHaveLength(1);
      expect(payments[0]).toMatchObject({ paymentId: first.body.paymentId, idempotencyKey: "order-1" });
      const outcomes = (await sim.get("/_sim/calls")).body.map((call: { outcome: string }) => call.outcome);
      expect(outcomes).toEqual(["ok", "replayed"]);
    });

    it("answers 422 idempotency_key_reused when the body differs", async () => {
      await sim.post(create, { amount: 86.1, currency: "GBP" }, keyed("order-1"));
      const reused = await sim.post(create, { amount: 86.2, currency: "GBP" }, keyed("order-1"));

      expect(reused).toEqual({ status: 422, body: { code: "idempotency_key_reused", message: expect.any(String) } });
      expect((await sim.get("/_sim/payments")).body).toHaveLength(1);
    });

    it("creates separate payments for different keys", async () => {
      const first = await sim.post(create, { amount: 5, currency: "USD" }, keyed("a"));
      const second = await sim.post(create, { amount: 5, currency: "USD" }, keyed("b"));

      expect(first.body.paymentId).not.toBe(second.body.paymentId);
    });
  });
});

describe("settling a payment", () => {
  it("answers 200 settled and marks the provider payment settled", async () => {
    const { body } = await sim.post(create, { amount: 20, currency: "GBP" });

    const settled = await sim.post(`/psp/api/payments/${body.paymentId}/settle`);

    expect(settled).toEqual({ status: 200, body: { paymentId: body.paymentId, status: "settled" } });
    expect((await sim.get("/_sim/payments")).body[0].status).toBe("settled");
  });

  it("answers the same 200 when already settled", async () => {
    const paymentId = await settledPayment(sim, 20);

    const again = await sim.post(`/psp/api/payments/${paymentId}/settle`);

    expect(again).toEqual({ status: 200, body: { paymentId, status: "settled" } });
    expect((await sim.get("/_sim/calls")).body.at(-1).outcome).toBe("replayed");
  });

  it("answers 404 for an unknown reference", async () => {
    const answer = await sim.post("/psp/api/payments/0b0e1f0c-9a43-4c52-8a36-2f7e2b0f6a11/settle");

    expect(answer).toEqual({ status: 404, body: { code: "payment_not_found", message: expect.any(String) } });
  });

  it("answers 409 payment_cancelled for a cancelled payment", async () => {
    const { body } = await sim.post(create, { amount: 20, currency: "GBP" });
    await sim.post(`/psp/api/payments/${body.paymentId}/cancel`);

    const answer = await sim.post(`/psp/api/payments/${body.paymentId}/settle`);

    expect(answer).toEqual({ status: 409, body: { code: "payment_cancelled", message: expect.any(String) } });
  });
});

describe("cancelling a payment", () => {
  it("answers 200 cancelled, and the same again when repeated", async () => {
    const { body } = await sim.post(create, { amount: 20, currency: "GBP" });

    const first = await sim.post(`/psp/api/payments/${body.paymentId}/cancel`);
    const again = await sim.post(`/psp/api/payments/${body.paymentId}/cancel`);

    expect(first).toEqual({ status: 200, body: { paymentId: body.paymentId, status: "cancelled" } });
    expect(again).toEqual(first);
    expect((await sim.get("/_sim/payments")).body[0].status).toBe("cancelled");
  });

  it("answers 409 payment_settled for a settled payment", async () => {
    const paymentId = await settledPayment(sim, 20);

    const answer = await sim.post(`/psp/api/payments/${paymentId}/cancel`);

    expect(answer).toEqual({ status: 409, body: { code: "payment_settled", message: expect.any(String) } });
  });

  it("answers 404 for an unknown reference", async () => {
    expect((await sim.post("/psp/api/payments/nope/cancel")).status).toBe(404);
  });
});

describe("refunding a payment", () => {
  const refunds = (paymentId: string) => `/psp/api/payments/${paymentId}/refunds`;

  it("answers 201 with a refund of the amount", async () => {
    const paymentId = await settledPayment(sim, 86.1);

    const answer = await sim.post(refunds(paymentId), { amount: 10.5 });

    expect(answer).toEqual({
      status: 201,
      body: { refundId: expect.stringMatching(uuid), paymentId, amount: 10.5, status: "succeeded" },
    });
    expect((await sim.get("/_sim/payments")).body[0]).toMatchObject({ refundedAmount: 10.5, refunds: [{ amount: 10.5 }] });
  });

  it("adds amounts exactly: three refunds of 0.1 use up 0.3 and a fourth of 0.01 is refused", async () => {
    const paymentId = await settledPayment(sim, 0.3);

    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await sim.post(refunds(paymentId), { amount: 0.1 })).status);
    const fourth = await sim.post(refunds(paymentId), { amount: 0.01 });

    expect(statuses).toEqual([201, 201, 201]);
    expect(fourth).toEqual({ status: 422, body: { code: "refund_exceeds_amount", message: expect.any(String) } });
    expect((await sim.get("/_sim/payments")).body[0].refundedAmount).toBe(0.3);
  });

  it("refunds the whole amount in parts that do not sum exactly in binary floating point", async () => {
    const paymentId = await settledPayment(sim, 86.1);

    const parts = [0.7, 0.2, 85.2].map((amount) => sim.post(refunds(paymentId), { amount }));

    expect((await Promise.all(parts)).map((answer) => answer.status)).toEqual([201, 201, 201]);
    expect((await sim.post(refunds(paymentId), { amount: 0.01 })).status).toBe(422);
  });

  it("refuses a single refund above the payment amount", async () => {
    const paymentId = await settledPayment(sim, 5);

    expect((await sim.post(refunds(paymentId), { amount: 5.01 })).body.code).toBe("refund_exceeds_amount");
  });

  it.each([0, -1, 0.001, "1"])("rejects the amount %j with 400", async (amount) => {
    const paymentId = await settledPayment(sim, 5);

    expect((await sim.post(refunds(paymentId), { amount })).body.code).toBe("invalid_request");
  });

  it("answers 409 payment_not_settled before settlement and after cancellation", async () => {
    const { body } = await sim.post(create, { amount: 5, currency: "GBP" });
    const before = await sim.post(refunds(body.paymentId), { amount: 1 });
    await sim.post(`/psp/api/payments/${body.paymentId}/cancel`);
    const cancelled = await sim.post(refunds(body.paymentId), { amount: 1 });

    expect([before.status, before.body.code]).toEqual([409, "payment_not_settled"]);
    expect([cancelled.status, cancelled.body.code]).toEqual([409, "payment_not_settled"]);
  });

  it("answers 404 for an unknown reference", async () => {
    expect((await sim.post(refunds("nope"), { amount: 1 })).body.code).toBe("payment_not_found");
  });

  describe("when the same Idempotency-Key is sent again", () => {
    it("answers the same refund and refunds once", async () => {
      const paymentId = await settledPayment(sim, 10);

      const first = await sim.post(refunds(paymentId), { amount: 4 }, keyed("refund-1"));
      const again = await sim.post(refunds(paymentId), { amount: 4 }, keyed("refund-1"));

      expect(again).toEqual(first);
      expect((await sim.get("/_sim/payments")).body[0].refunds).toHaveLength(1);
    });

    it("answers 422 idempotency_key_reused when the amount differs", async () => {
      const paymentId = await settledPayment(sim, 10);
      await sim.post(refunds(paymentId), { amount: 4 }, keyed("refund-1"));

      const reused = await sim.post(refunds(paymentId), { amount: 5 }, keyed("refund-1"));

      expect([reused.status, reused.body.code]).toEqual([422, "idempotency_key_reused"]);
    });

    it("lets a key refused for state be used once the payment is settled", async () => {
      const { body } = await sim.post(create, { amount: 10, currency: "GBP" });
      const early = await sim.post(refunds(body.paymentId), { amount: 4 }, keyed("refund-1"));
      await sim.post(`/psp/api/payments/${body.paymentId}/settle`);

      const later = await sim.post(refunds(body.paymentId), { amount: 4 }, keyed("refund-1"));

      expect([early.status, later.status]).toEqual([409, 201]);
    });
  });
});
