import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PaymentObject } from "../../src/durable/paymentObject.ts";
import { keys } from "../setup/constants.ts";
import { api, createPayment, notified, simulator, store, waitForPayment, type Json } from "../helpers.ts";

const types = async (id: string) => (await store().load(`pay:${id}`)).map((d) => d.eventType);

afterEach(() => simulator.reset());

describe("cancelling a payment", () => {
  it("while it is initiated after failed create attempts answers 200, cancelling at the provider whatever an attempt made", async () => {
    await simulator.settings({ failNext: { route: "create", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 501, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.stalled !== null);
    const res = await api(`/api/payments/${payment.id}/cancel`, { body: { reason: "customer changed their mind" } });
    expect(res).toMatchObject({ status: 200, body: { status: "cancelled", cancellation: { reason: "customer changed their mind" }, stalled: null } });
    // An attempt may have reached the provider: the same idempotency key finds (or makes) its payment, which is cancelled.
    expect(await types(payment.id)).toEqual(["PaymentInitiated", "PaymentStepStalled", "PaymentCreated", "PaymentCancelled"]);
    const atProvider = Object.values((await simulator.payments()) as Json).flat().filter((p: Json) => p.amount === 501);
    expect(atProvider.map((p) => (p as Json).status)).toEqual(["cancelled"]);
  });

  it("tells the merchant, once and signed, that it was cancelled", async () => {
    await simulator.settings({ failNext: { route: "settle", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 507, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.stalled !== null);
    const cancelled = (await api(`/api/payments/${payment.id}/cancel`, { body: { reason: "out of stock" } })).body;
    const notes = await notified(payment.id, "payment.cancelled");
    expect(notes.map((c: Json) => c.status)).toEqual([200]);
    expect(JSON.parse(notes[0]!.body.jsonPayload)).toMatchObject({ type: "payment.cancelled", createdAt: cancelled.cancelledAt, data: { status: "cancelled", cancellation: { reason: "out of stock" } } });
    // Once every event's delivery is confirmed (the step done), still the one notification.
    await vi.waitFor(async () => expect((await api(`/admin/payments/${payment.id}/relay`, { key: keys.admin })).body).toMatchObject({ undelivered: [] }), { timeout: 10_000, interval: 50 });
    expect(await notified(payment.id, "payment.cancelled")).toHaveLength(1);
    expect(await types(payment.id)).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentStepStalled", "PaymentCancelled"]);
  });

  it("once it is created cancels it at the provider first", async () => {
    await simulator.settings({ failNext: { route: "settle", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 502, currency: "GBP" });
    const created = await waitForPayment(payment.id, (p) => p.stalled !== null);
    expect(created.status).toBe("created");
    expect((await api(`/api/payments/${payment.id}/cancel`, { method: "POST" })).body.status).toBe("cancelled");
    const providerPayments = (await simulator.payments()) as Json;
    const atProvider = Object.values(providerPayments).flat().find((p: Json) => p.paymentId === created.paymentReference || p.id === created.paymentReference) as Json;
    expect(atProvider?.status).toBe("cancelled");
  });

  it("that the provider settled, unknown here (its settle step stalled), is refused with 409, and the settlement is then recorded", async () => {
    await simulator.settings({ failNext: { route: "settle", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 506, currency: "GBP" });
    const created = await waitForPayment(payment.id, (p) => p.stalled !== null);
    expect((await simulator.settle(created.paymentReference as string)).status).toBe(200);
    const refused = await api(`/api/payments/${payment.id}/cancel`, { body: {} });
    expect(refused).toMatchObject({ status: 409, body: { code: "payment_not_cancellable", detail: "the payment is settled; refund it instead" } });
    // The stalled settle step ran again: the provider replayed its settlement, and the lifecycle went on.
    expect(await waitForPayment(payment.id, (p) => p.status === "completed")).toMatchObject({ stalled: null });
    expect(await types(payment.id)).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentStepStalled", "PaymentSettled", "PaymentCompleted"]);
  });

  it("tells the merchant the provider is unavailable without the provider's own words, and takes an empty JSON body", async () => {
    await simulator.settings({ failNext: { route: "settle", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 505, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.stalled !== null);
    await simulator.settings({ failNext: { route: "cancel", count: 1, status: 401 } });
    const refused = await api(`/api/payments/${payment.id}/cancel`, { body: {} });
    expect(refused).toMatchObject({ status: 503, body: { code: "provider_unavailable", detail: "the payment provider is unavailable; retry later" } });
    expect(refused.headers.get("retry-after")).toBe("1");
    // Many clients send the JSON content type on every request, bodiless ones too: an empty body is no body.
    const res = await api(`/api/payments/${payment.id}/cancel`, { method: "POST", body: "", headers: { "content-type": "application/json" } });
    expect(res).toMatchObject({ status: 200, body: { status: "cancelled" } });
  });

  it("is refused with 409 once the payment is settled", async () => {
    const payment = await createPayment({ amount: 503, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    expect(await api(`/api/payments/${payment.id}/cancel`, { body: {} })).toMatchObject({ status: 409, body: { code: "payment_not_cancellable" } });
  });

  it("is idempotent, and refuses its Idempotency-Key with another reason", async () => {
    await simulator.settings({ failNext: { route: "create", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 504, currency: "GBP" });
    const key = crypto.randomUUID();
    const first = await api(`/api/payments/${payment.id}/cancel`, { body: { reason: "a" }, headers: { "idempotency-key": key } });
    const again = await api(`/api/payments/${payment.id}/cancel`, { body: { reason: "a" }, headers: { "idempotency-key": key } });
    expect(again).toMatchObject({ status: 200, body: first.body });
    expect((await api(`/api/payments/${payment.id}/cancel`, { body: { reason: "b" }, headers: { "idempotency-key": key } })).status).toBe(422);
    expect((await api(`/api/payments/${payment.id}/cancel`, { body: {} })).status).toBe(200);
    expect((await types(payment.id)).filter((t) => t === "PaymentCancelled")).toHaveLength(1);
  });

  it("records nothing for a repeat that changed nothing: fresh keys on a cancelled payment are answered, and its storage stays as it was", async () => {
    await simulator.settings({ failNext: { route: "create", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 505, currency: "GBP" });
    const cancel = (key: string, reason: string) => api(`/api/payments/${payment.id}/cancel`, { body: { reason }, headers: { "idempotency-key": key } });
    const first = await cancel("first", "a");
    expect(first).toMatchObject({ status: 200, body: { status: "cancelled" } });
    for (let i = 0; i < 5; i++) {
      const repeat = await cancel(`repeat-${i}`, "b");
      expect(repeat).toMatchObject({ status: 200, body: { status: "cancelled", cancellation: first.body.cancellation } });
      expect(repeat.headers.get("idempotent-replayed")).toBeNull();
    }
    // The first key still replays (its reply is in the object's storage by now: the replay reads it there)...
    const replay = await cancel("first", "a");
    expect(replay).toMatchObject({ status: 200, body: first.body });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    // ...and it is the only key recorded.
    const recorded = await runInDurableObject(env.PAYMENTS.getByName(payment.id), (_: PaymentObject, state) =>
      state.storage.sql.exec<{ key: string }>("SELECT key FROM idempotency").toArray().map((r) => r.key),
    );
    expect(recorded).toEqual(["cancel:merchant-a:first"]);
  });

  it("racing with the create step ends cancelled, or created then cancelled, and never settled", async () => {
    const outcomes = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const payment = await createPayment({ amount: 510 + i, currency: "GBP" });
      const res = await api(`/api/payments/${payment.id}/cancel`, { body: {} });
      if (res.status === 409) {
        // Too late: the merchant was told so, and the payment went on to settle.
        expect(res.body.code).toBe("payment_not_cancellable");
        await waitForPayment(payment.id, (p) => p.status === "completed");
        outcomes.add("too late");
        continue;
      }
      expect(res.body.status).toBe("cancelled");
      await waitForPayment(payment.id, (p) => p.status === "cancelled");
      const history = await types(payment.id);
      expect([["PaymentInitiated", "PaymentCancelled"], ["PaymentInitiated", "PaymentCreated", "PaymentCancelled"]]).toContainEqual(history);
      outcomes.add(history.join(">"));
      const settles = (await simulator.calls()).filter((c: Json) => c.route === "settle" && c.status === 200 && c.paymentId === res.body.paymentReference);
      expect(settles).toEqual([]);
    }
    // The race was run: at least one cancel reached the payment before its settlement (a cancel follows its create
    // within milliseconds, while the settlement needs two steps through the queue).
    expect([...outcomes].filter((o) => o !== "too late")).not.toEqual([]);
  });

  it("after a create attempt that timed out finds the provider's payment by its key and cancels it too", async () => {
    await simulator.settings({ timeoutRate: 1 });
    const payment = await createPayment({ amount: 520, currency: "GBP" });
    await vi_waitForCall("create", 520);
    await simulator.settings({ timeoutRate: 0 });
    const res = await api(`/api/payments/${payment.id}/cancel`, { body: {} });
    expect(res.body).toMatchObject({ status: "cancelled", paymentReference: expect.any(String) });
    expect(await types(payment.id)).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentCancelled"]);
    const atProvider = Object.values((await simulator.payments()) as Json).flat().filter((p: Json) => p.amount === 520);
    expect(atProvider).toHaveLength(1);
    expect((atProvider[0] as Json).status).toBe("cancelled");
  });
});

async function vi_waitForCall(route: string, amount: number) {
  const { vi } = await import("vitest");
  await vi.waitFor(async () => expect((await simulator.calls()).some((c: Json) => c.route === route && c.body?.amount === amount)).toBe(true), { timeout: 5000, interval: 20 });
}
