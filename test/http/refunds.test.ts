import { afterEach, describe, expect, it, vi } from "vitest";
import { api, createPayment, notified, simulator, store, waitForPayment, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";

const settledPayment = async (amount: number, currency = "GBP") => {
  const payment = await createPayment({ amount, currency });
  return waitForPayment(payment.id, (p) => p.status === "completed");
};
const refundEvents = async (id: string) => (await store().load(`pay:${id}`)).filter((d) => d.eventType.startsWith("Refund"));

afterEach(() => simulator.reset());

describe("refunds", () => {
  it("accept exactly 50 of 100 concurrent refunds of 1.00 on a 50.00 payment, and the stream's refunds sum to 50.00", async () => {
    const payment = await settledPayment(50);
    const results = await Promise.all(Array.from({ length: 100 }, () => api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 } })));
    expect(results.filter((r) => r.status === 202)).toHaveLength(50);
    const rejected = results.filter((r) => r.status !== 202);
    expect(rejected).toHaveLength(50);
    expect(rejected.every((r) => r.status === 422 && r.body.code === "refund_exceeds_amount")).toBe(true);
    const requested = (await refundEvents(payment.id)).filter((d) => d.eventType === "RefundRequested");
    expect(requested.reduce((sum, d) => sum + Math.round((d.eventData.Amount as number) * 100), 0)).toBe(5000);
    const done = await waitForPayment(payment.id, (p) => p.refunds.every((r) => r.status === "succeeded"));
    expect(done.refundedAmount).toBe(50);
    expect(done.refunds).toHaveLength(50);
  });

  it("without an amount refund all that is left (a failed refund's amount included), then answer 422: nothing is left", async () => {
    await simulator.settings({ declines: [{ route: "refund", amountEquals: 3, code: "refund_declined", reason: "too late" }] });
    const payment = await settledPayment(20);
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 5 } })).status).toBe(202);
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 3 } })).status).toBe(202);
    await waitForPayment(payment.id, (p) => p.refunds.every((r) => r.status !== "pending"));
    const rest = await api(`/api/payments/${payment.id}/refunds`, { method: "POST", headers: { "idempotency-key": `rest-${payment.id}` } });
    expect(rest).toMatchObject({ status: 202, body: { object: "refund", amount: 15, status: "pending" } });
    // Its key replays it, bodiless or with `{}`, though nothing is left now.
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: {}, headers: { "idempotency-key": `rest-${payment.id}` } })).body.id).toBe(rest.body.id);
    const none = await api(`/api/payments/${payment.id}/refunds`, { body: {} });
    expect(none).toMatchObject({ status: 422, body: { code: "refund_exceeds_amount", detail: "nothing is left to refund" } });
    expect((await waitForPayment(payment.id, (p) => p.refunds.every((r) => r.status !== "pending"))).refundedAmount).toBe(20);
  });

  it("answer 202 with the refund, then run it at the provider and notify the merchant, signed", async () => {
    const payment = await settledPayment(80);
    const res = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 12.34 } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ object: "refund", paymentId: payment.id, amount: 12.34, currency: "GBP", status: "pending" });
    const done = await waitForPayment(payment.id, (p) => p.refunds[0]?.status === "succeeded");
    expect(done).toMatchObject({ refundedAmount: 12.34, status: "completed" });
    const list = await api(`/api/payments/${payment.id}/refunds`);
    expect(list.body.refunds).toEqual([expect.objectContaining({ id: res.body.id, status: "succeeded", providerRefundId: expect.any(String) })]);
    await notified(payment.id, "refund.succeeded");
  });

  it("replay one refund for a retry with its Idempotency-Key, and refuse the key with another amount", async () => {
    const payment = await settledPayment(20);
    const key = crypto.randomUUID();
    const first = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 5 }, headers: { "idempotency-key": key } });
    const again = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 5 }, headers: { "idempotency-key": key } });
    expect(again).toMatchObject({ status: 202, body: first.body });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const other = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 6 }, headers: { "idempotency-key": key } });
    expect(other).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });
    expect((await refundEvents(payment.id)).filter((d) => d.eventType === "RefundRequested")).toHaveLength(1);
  });

  it("free their amount again when the provider refuses them, and the merchant hears of it", async () => {
    await simulator.settings({ declines: [{ route: "refund", amountEquals: 30, code: "refund_declined", reason: "too late" }] });
    const payment = await settledPayment(50);
    await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 30 } });
    const failed = await waitForPayment(payment.id, (p) => p.refunds[0]?.status === "failed");
    expect(failed.refunds[0]).toMatchObject({ status: "failed", failureReason: "refund_declined" });
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 50 } })).status).toBe(202);
    await notified(payment.id, "refund.failed");
  });

  it("show a stalled notification of theirs until a re-drive delivers it, then no longer", async () => {
    const payment = await settledPayment(20);
    await simulator.settings({ failNext: { route: "notify", count: 3, status: 500 } });
    await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 5 } });
    const stalled = await waitForPayment(payment.id, (p) => p.refunds[0]?.stalled !== null && p.refunds[0]?.stalled !== undefined);
    expect(stalled.refunds[0]).toMatchObject({ status: "succeeded", stalled: { step: "notify-refund" } });
    const listed = async () => (await api(`/api/payments?limit=100`)).body.data.find((p: Json) => p.id === payment.id);
    await vi.waitFor(async () => expect(await listed()).toMatchObject({ stalled: true }), { timeout: 10_000, interval: 50 });
    expect(await api(`/admin/payments/${payment.id}/redrive`, { method: "POST", key: keys.admin })).toMatchObject({ status: 202, body: { redriven: 1 } });
    await notified(payment.id, "refund.succeeded");
    const recovered = await waitForPayment(payment.id, (p) => p.refunds[0]?.stalled === null);
    expect(recovered.refunds[0]).toMatchObject({ status: "succeeded", stalled: null });
    await vi.waitFor(async () => expect(await listed()).toMatchObject({ stalled: false }), { timeout: 10_000, interval: 50 });
    expect((await store().load(`pay:${payment.id}`)).map((d) => d.eventType).slice(-2)).toEqual(["PaymentStepStalled", "PaymentStepRecovered"]);
    // Every attempt, before the stall and after the re-drive (the stream had moved on), sent the same body: the
    // refund as of the event that triggered it, dated by it.
    const bodies = (await simulator.calls()).filter((c: Json) => c.route === "notify" && c.body?.id === payment.id && JSON.parse(c.body.jsonPayload).type === "refund.succeeded").map((c: Json) => c.body.jsonPayload);
    expect(bodies).toHaveLength(4);
    expect(new Set(bodies).size).toBe(1);
    expect(JSON.parse(bodies[0]!)).toMatchObject({ createdAt: recovered.refunds[0]!.completedAt, data: { object: "refund", status: "succeeded", stalled: null } });
  });

  it("are refused before settlement (409), on cancelled payments (409) and with too many decimals (400)", async () => {
    await simulator.settings({ failNext: { route: "create", count: 3, status: 503 } });
    const stuck = await createPayment({ amount: 401, currency: "GBP" });
    await waitForPayment(stuck.id, (p) => p.stalled !== null);
    expect((await api(`/api/payments/${stuck.id}/refunds`, { body: { amount: 1 } })).body.code).toBe("payment_not_settled");
    const cancelled = await api(`/api/payments/${stuck.id}/cancel`, { body: {} });
    expect(cancelled.status).toBe(200);
    expect((await api(`/api/payments/${stuck.id}/refunds`, { body: { amount: 1 } })).body).toMatchObject({ status: 409, code: "payment_not_refundable" });
    const payment = await settledPayment(10);
    const precise = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1.234 } });
    expect(precise).toMatchObject({ status: 400, body: { code: "validation_failed", errors: { amount: [expect.any(String)] } } });
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: -1 } })).status).toBe(400);
  });
});
