import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../../src/index.ts";
import type { EventStore } from "../../src/core/eventStore.ts";
import { eventMessage } from "../../src/queue/message.ts";
import { rebuildPage } from "../../src/readModel/payments.ts";
import { api, createPayment, emulator, store, waitForAll, whileListFails, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";

const listed = async (query = "", key = keys.merchantA) => {
  const res = await api(`/api/payments${query}`, { key });
  expect(res.status).toBe(200);
  return res.body as { data: Json[]; nextCursor: string | null };
};

/** Waits until the list (read model) shows every payment in `ids` with the status `until` allows. */
async function waitListed(ids: string[], until: (row: Json) => boolean) {
  await vi.waitFor(
    async () => {
      const rows = new Map((await listed("?limit=100")).data.map((r) => [r.id, r]));
      for (const id of ids) expect(rows.get(id) && until(rows.get(id)!)).toBe(true);
    },
    { timeout: 15_000, interval: 100 },
  );
}

describe("the payments list", () => {
  it("answers 503 with Retry-After while its database fails, and lists again once it answers", async () => {
    await whileListFails(async () => {
      const res = await api("/api/payments");
      expect(res).toMatchObject({ status: 503, body: { code: "service_unavailable" } });
      expect(res.headers.get("retry-after")).toBe("1");
    });
    expect((await api("/api/payments")).status).toBe(200);
  });

  it("lists the merchant's payments newest first, with filters and cursor paging, never another merchant's", async () => {
    const mine: Awaited<ReturnType<typeof createPayment>>[] = [];
    for (const [amount, currency] of [[11, "GBP"], [12, "EUR"], [13, "GBP"], [14, "USD"], [15, "GBP"]] as const) mine.push(await createPayment({ amount, currency }));
    const theirs = await createPayment({ amount: 16, currency: "GBP" }, { key: keys.merchantB });
    await waitForAll(mine.map((p) => p.id), (p) => p.status === "completed");
    await waitListed(mine.map((p) => p.id), (r) => r.status === "completed");

    const all = await listed("?limit=100");
    expect(all.data.map((r) => r.id)).not.toContain(theirs.id);
    const order = all.data.map((r) => r.initiatedAt);
    expect(order).toEqual([...order].sort().reverse());
    expect(all.data.find((r) => r.id === mine[0]!.id)).toEqual({
      object: "payment_summary",
      id: mine[0]!.id,
      status: "completed",
      amount: 11,
      currency: "GBP",
      initiatedAt: mine[0]!.initiatedAt,
      updatedAt: expect.any(String),
      version: 4,
      stalled: false,
      refundedAmount: 0,
    });
    const euros = (await listed("?currency=EUR&limit=100")).data;
    expect(euros.map((r) => r.id)).toContain(mine[1]!.id);
    expect(euros.every((r) => r.currency === "EUR")).toBe(true);
    expect((await listed("?status=failed&limit=100")).data.map((r) => r.id)).not.toContain(mine[0]!.id);
    const window = await listed(`?createdFrom=${encodeURIComponent(mine[1]!.initiatedAt)}&createdTo=${encodeURIComponent(mine[3]!.initiatedAt)}&limit=100`);
    expect(window.data.map((r) => r.id).sort()).toEqual([mine[1]!.id, mine[2]!.id].sort());

    // Paging two at a time walks the same rows in the same order, without repeats.
    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Json[]; nextCursor: string | null } = await listed(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(page.data.length).toBeLessThanOrEqual(2);
      pages.push(...page.data.map((r) => r.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages).toEqual(all.data.map((r) => r.id));
    expect((await listed("", keys.merchantB)).data.map((r) => r.id)).toEqual([theirs.id]);
  });

  it("refuses bad filters and cursors with 400", async () => {
    for (const q of ["?limit=0", "?limit=101", "?status=lost", "?currency=gbp", "?createdFrom=yesterday", "?cursor=bm90LWEtY3Vyc29y", "?colour=red"])
      expect((await api(`/api/payments${q}`)).status).toBe(400);
  });

  it("is not changed by redelivered, late or reordered events", async () => {
    const payment = await createPayment({ amount: 21, currency: "GBP" });
    await waitForAll([payment.id], (p) => p.status === "completed");
    await waitListed([payment.id], (r) => r.status === "completed");
    const docs = await store().load(`pay:${payment.id}`);
    // Old messages (with the summary of their time) delivered again, in reverse order: the row stays completed.
    const stale = docs.map((d, i) => eventMessage(d, { id: payment.id, merchantId: "merchant-a", status: "initiated", amount: 21, currency: "GBP", initiatedAt: payment.initiatedAt, updatedAt: payment.initiatedAt, version: i + 1, stalled: false, refundedAmount: 0 }));
    const batch = createMessageBatch("payment-events", stale.reverse().map((body, i) => ({ id: `m-${i}`, timestamp: new Date(), attempts: 1, body })));
    await worker.queue(batch as MessageBatch<unknown>, env);
    const row = (await listed("?limit=100")).data.find((r) => r.id === payment.id);
    expect(row).toMatchObject({ status: "completed", version: 4 });
  });

  it("is not rolled back by a rebuild that replayed a stream just before the consumer recorded a newer event", async () => {
    const payment = await createPayment({ amount: 23, currency: "GBP" });
    await waitForAll([payment.id], (p) => p.status === "completed");
    await waitListed([payment.id], (r) => r.status === "completed");
    const docs = await store().load(`pay:${payment.id}`);
    // A rebuild begins (its first page finds nothing yet); then a refund, which the consumer lists...
    const first = await rebuildPage(env.READ_MODEL, { ...store(), changedStreams: async () => ({ streamIds: [], continuation: "feed" }) } as unknown as EventStore, null, "dev");
    expect(first.continuation).toMatch(/^\d+\.feed$/);
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 } })).status).toBe(202);
    await waitListed([payment.id], (r) => r.refundedAmount === 1);
    const listedVersion = (await listed("?limit=100")).data.find((r) => r.id === payment.id)!.version;
    // ...and a later page of the rebuild whose read of this stream came before the refund.
    const stale = { ...store(), changedStreams: async () => ({ streamIds: [`pay:${payment.id}`], continuation: null }), version: async () => docs.length, loadFrom: async () => docs } as unknown as EventStore;
    expect(await rebuildPage(env.READ_MODEL, stale, first.continuation, "dev")).toEqual({ payments: 1, continuation: null });
    expect((await listed("?limit=100")).data.find((r) => r.id === payment.id)).toMatchObject({ status: "completed", version: listedVersion, refundedAmount: 1 });
  });

  it("is not moved back by a rebuild whose read of a stream lags behind its commits (a replica behind)", async () => {
    const payment = await createPayment({ amount: 25, currency: "GBP" });
    await waitForAll([payment.id], (p) => p.status === "completed");
    await waitListed([payment.id], (r) => r.status === "completed");
    const real = store();
    const streamId = `pay:${payment.id}`;
    let readsBehind = 2;
    const replica = {
      changedStreams: async () => ({ streamIds: [streamId], continuation: "feed" }),
      version: (s: string) => real.version(s),
      loadFrom: async (s: string, from: number, n?: number) => ((docs) => (readsBehind-- > 0 ? docs.slice(0, 2) : docs))(await real.loadFrom(s, from, n)),
    } as unknown as EventStore;
    const row = async () => (await listed("?limit=100")).data.find((r) => r.id === payment.id);
    // Read behind twice: the page fails (run it again), and the row stays as the consumer wrote it.
    await expect(rebuildPage(env.READ_MODEL, replica, null, "dev")).rejects.toThrow(/behind its commits/);
    expect(await row()).toMatchObject({ status: "completed", version: 4 });
    // Read behind once: read again, and replayed as Cosmos holds it.
    readsBehind = 1;
    expect(await rebuildPage(env.READ_MODEL, replica, null, "dev")).toMatchObject({ payments: 1 });
    expect(await row()).toMatchObject({ status: "completed", version: 4 });
    expect(readsBehind).toBe(-1);
  });

  it("stays whole while a rebuild runs, and after one that failed", async () => {
    const payment = await createPayment({ amount: 24, currency: "GBP" });
    await waitListed([payment.id], (r) => r.status === "completed");
    // Cosmos failing the change feed (the emulator's fault, through the real client).
    await emulator.fault({ kind: "changefeed", mode: "503", count: 1_000 });
    try {
      await expect(rebuildPage(env.READ_MODEL, store(), null, "dev")).rejects.toThrow(/unavailable|503/i);
    } finally {
      await emulator.clearFaults();
    }
    const midway = await rebuildPage(env.READ_MODEL, { ...store(), changedStreams: async () => ({ streamIds: [], continuation: "feed" }) } as unknown as EventStore, null, "dev");
    expect(midway.continuation).not.toBeNull();
    expect((await listed("?limit=100")).data.find((r) => r.id === payment.id)).toMatchObject({ status: "completed", version: 4 });
    const bogus = await api("/admin/read-model/rebuild", { body: { continuation: "not-one-of-ours" }, key: keys.admin });
    expect(bogus).toMatchObject({ status: 400, body: { code: "validation_failed" } });
  });

  it("is rebuilt from Cosmos's change feed by the admin route", async () => {
    const payment = await createPayment({ amount: 22, currency: "GBP" });
    await waitForAll([payment.id], (p) => p.status === "completed");
    await waitListed([payment.id], (r) => r.status === "completed");
    // A row rolled back, and a row for a payment Cosmos never had: the rebuild restores the one and drops the other.
    await env.READ_MODEL.prepare("UPDATE payments SET status = 'initiated', version = 1, initiated_at = '2000-01-01T00:00:00.000Z', initiated_ms = 0 WHERE id = ?").bind(payment.id).run();
    await env.READ_MODEL.prepare("INSERT INTO payments VALUES ('ghost', 'merchant-a', 'settled', 1, 'GBP', ?1, 0, ?1, 3, 0, 0, 0)").bind(payment.initiatedAt).run();
    let continuation: string | null = null;
    let pages = 0;
    do {
      const res = await api("/admin/read-model/rebuild", { body: continuation ? { continuation } : {}, key: keys.admin });
      expect(res.status).toBe(200);
      continuation = res.body.continuation;
      pages++;
    } while (continuation && pages < 1000);
    const rows = (await listed("?limit=100")).data;
    expect(rows.find((r) => r.id === payment.id)).toMatchObject({ status: "completed", version: 4, initiatedAt: payment.initiatedAt });
    expect(rows.map((r) => r.id)).not.toContain("ghost");
  });
});
