// What a payment costs in Cosmos requests, read from the emulator's counters (its own file: nothing else runs).
import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { PaymentEvent } from "../../src/payment/events.ts";
import { allDelivered, api, createPayment, emulator, simulator, waitForPayment, writtenElsewhere } from "../helpers.ts";

const quiet = { query: 0, read: 0, write: 0, changefeed: 0, batch: 0 };

afterEach(() => simulator.reset());

describe("the cost of a payment in Cosmos requests", () => {
  it("is at most one request for many health checks within HEALTH_CACHE_MS: a probe needs no key, so it cannot drive Cosmos's requests", async () => {
    await emulator.quiet();
    await emulator.resetCounters();
    for (let i = 0; i < 5; i++) expect(await api("/health", { key: null })).toMatchObject({ status: 200, body: { status: "ok" } });
    expect(Object.values(await emulator.counters()).reduce((sum, n) => sum + n, 0)).toBeLessThanOrEqual(1);
  });

  it("is four stored-procedure executions for a whole lifecycle, and nothing else", async () => {
    await emulator.resetCounters();
    const payment = await createPayment({ amount: 301, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    // Once no step is on its way: whatever the lifecycle asks of Cosmos after its completion is counted too.
    await allDelivered(env.PAYMENTS.getByName(payment.id), payment.id, 4);
    expect(await emulator.counters(payment.id)).toMatchObject({ sproc: 4, ...quiet });
    expect(await emulator.counters()).toMatchObject({ changefeed: 0 }); // it names no partition: counted only in all
  });

  it("is one request for a command on a warm payment with 1,000 refund events, written elsewhere, first loaded from Cosmos, then after eviction from its copy and one query", async () => {
    const at = new Date().toISOString();
    const refunds: PaymentEvent[] = Array.from({ length: 499 }, (_, i): PaymentEvent[] => [
      { type: "RefundRequested", data: { RefundId: `r-${i}`, Amount: 1, Timestamp: at } },
      { type: "RefundSucceeded", data: { RefundId: `r-${i}`, ProviderRefundId: `p-${i}`, Timestamp: at } },
    ]).flat();
    const id = await writtenElsewhere(1000, refunds);

    const loaded = await api(`/api/payments/${id}`);
    expect(loaded.body).toMatchObject({ status: "completed", version: 1002, refundedAmount: 499 });
    expect(loaded.body.refunds).toHaveLength(499);

    // Evicted, it replays its copy of the 1,002 events and asks Cosmos once, from the copy's last event on.
    await evictDurableObject(env.PAYMENTS.getByName(id));
    await emulator.resetCounters();
    expect((await api(`/api/payments/${id}`)).body).toEqual(loaded.body);
    expect(await emulator.counters(id)).toMatchObject({ sproc: 0, query: 1, read: 0 });

    // Hold the refund's own provider step back (unanswered until the file's reset), so that only the command's cost is counted.
    await simulator.settings({ hold: ["refund"] });
    await emulator.resetCounters();
    const refund = await api(`/api/payments/${id}/refunds`, { body: { amount: 1 } });
    expect(refund.status).toBe(202);
    expect(await emulator.counters(id)).toMatchObject({ sproc: 1, ...quiet });
  });
});
