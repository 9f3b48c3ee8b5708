import { afterEach, describe, expect, it, vi } from "vitest";
import { api, createPayment, simulator, waitForAll, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";

const redriveStalled = (body?: Json, key = keys.admin) => api("/admin/redrive-stalled", { method: "POST", key, ...(body ? { body } : {}) });

/** The ids the payments list (read model) shows stalled, in id order. */
async function listedStalled() {
  const res = await api("/api/payments?limit=100");
  return (res.body.data as Json[]).filter((r) => r.stalled).map((r) => r.id as string).sort();
}

/** Two payments (of `amount` and one more) stalled at settlement and listed so, their ids in id order. */
async function twoStalled(amount: number) {
  // The provider refuses every settle attempt of both payments (3 each: the queue's delivery and 2 retries).
  await simulator.settings({ failNext: { route: "settle", count: 6, status: 503 } });
  const payments = [await createPayment({ amount, currency: "GBP" }), await createPayment({ amount: amount + 1, currency: "GBP" })];
  const ids = payments.map((p) => p.id).sort();
  await waitForAll(ids, (p) => p.stalled !== null);
  await vi.waitFor(async () => expect(await listedStalled()).toEqual(ids), { timeout: 10_000, interval: 100 });
  return ids;
}

afterEach(async () => {
  await simulator.reset();
});

describe("re-driving every stalled payment", () => {
  it("re-drives them page by page after an outage stalled them, until every one completes", async () => {
    const ids = await twoStalled(171);

    expect((await redriveStalled({}, keys.merchantA)).status).toBe(403);
    expect((await redriveStalled({ limit: 0 })).body).toMatchObject({ code: "validation_failed", errors: { limit: expect.any(Array) } });
    const first = await redriveStalled({ limit: 1 });
    expect(first).toMatchObject({ status: 202, body: { payments: [{ id: ids[0], redriven: 1 }], next: ids[0] } });
    const second = await redriveStalled({ after: ids[0], limit: 1 });
    expect(second).toMatchObject({ status: 202, body: { payments: [{ id: ids[1], redriven: 1 }], next: ids[1] } });

    const done = await waitForAll(ids, (p) => p.status === "completed");
    expect(done.map((p) => p.stalled)).toEqual([null, null]);
    await vi.waitFor(async () => expect(await listedStalled()).toEqual([]), { timeout: 10_000, interval: 100 });
    expect(await redriveStalled()).toMatchObject({ status: 202, body: { payments: [], next: null } });
  });

  it("spreads a page's payments over spreadSeconds: the first at once, each next one later", async () => {
    const ids = await twoStalled(173);

    expect((await redriveStalled({ spreadSeconds: 901 })).body).toMatchObject({ code: "validation_failed", errors: { spreadSeconds: expect.any(Array) } });
    const sent = Date.now();
    expect(await redriveStalled({ spreadSeconds: 10 })).toMatchObject({ status: 202, body: { payments: [{ id: ids[0], redriven: 1 }, { id: ids[1], redriven: 1 }] } });
    const [first, second] = await waitForAll(ids, (p) => p.status === "completed");
    // Two payments over 10 s: the first is due at once, the second 5 s later, so it cannot have settled sooner.
    expect(Date.parse(first!.settledAt!) - sent).toBeLessThan(5000);
    expect(Date.parse(second!.settledAt!) - sent).toBeGreaterThanOrEqual(5000);
  });
});
