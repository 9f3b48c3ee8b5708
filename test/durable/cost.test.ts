// What a payment costs in Cosmos requests, read from the emulator's counters (its own file: nothing else runs).
import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { EventDocument } from "../../src/core/eventStore.ts";
import { encode } from "../../src/cosmos/codec.ts";
import type { PaymentEvent } from "../../src/payment/events.ts";
import { api, createPayment, emulator, simulator, store, waitForPayment } from "../helpers.ts";

const quiet = { query: 0, read: 0, write: 0, changefeed: 0, batch: 0 };

afterEach(() => simulator.reset());

describe("the cost of a payment in Cosmos requests", () => {
  it("is four stored-procedure executions for a whole lifecycle, and nothing else", async () => {
    await emulator.resetCounters();
    const payment = await createPayment({ amount: 301, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    expect(await emulator.counters()).toMatchObject({ sproc: 4, ...quiet });
  });

  it("is one request for a command on a warm payment with 1,000 refund events, which also loads correctly after eviction", async () => {
    const id = crypto.randomUUID();
    const s = `pay:${id}`;
    const at = new Date().toISOString();
    const events: PaymentEvent[] = [
      { type: "PaymentInitiated", data: { PaymentId: id, Amount: 1000, Currency: "GBP", MerchantId: "merchant-a", Timestamp: at } },
      { type: "PaymentCreated", data: { PaymentReference: "ref-big", Timestamp: at } },
      { type: "PaymentSettled", data: { PaymentReference: "ref-big", Timestamp: at } },
      { type: "PaymentCompleted", data: { Timestamp: at } },
    ];
    for (let i = 0; i < 499; i++)
      events.push(
        { type: "RefundRequested", data: { RefundId: `r-${i}`, Amount: 1, Timestamp: at } },
        { type: "RefundSucceeded", data: { RefundId: `r-${i}`, ProviderRefundId: `p-${i}`, Timestamp: at } },
      );
    const docs: EventDocument[] = events.map((e, i) => encode(s, i + 1, e, { eventId: crypto.randomUUID(), correlationId: null, causationId: null }));
    for (let v = 0; v < docs.length; v += 100) expect((await store().append(s, v, docs.slice(v, v + 100))).ok).toBe(true);

    await evictDurableObject(env.PAYMENTS.getByName(id)).catch(() => undefined);
    const loaded = await api(`/api/payments/${id}`);
    expect(loaded.body).toMatchObject({ status: "completed", version: 1002, refundedAmount: 499 });
    expect(loaded.body.refunds).toHaveLength(499);

    // Hold the refund's own provider step back, so that only the command's cost is counted.
    await simulator.settings({ latencyMs: 1000 });
    await emulator.resetCounters();
    const refund = await api(`/api/payments/${id}/refunds`, { body: { amount: 1 } });
    expect(refund.status).toBe(202);
    expect(await emulator.counters()).toMatchObject({ sproc: 1, ...quiet });
  });
});
