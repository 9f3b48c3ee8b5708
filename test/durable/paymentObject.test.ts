import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { EventStoreError, eventDocument, type EventDocument, type EventStore } from "../../src/core/eventStore.ts";
import { encode } from "../../src/cosmos/codec.ts";
import { uuidFrom } from "../../src/core/ids.ts";
import { loadConfig } from "../../src/config.ts";
import type { PaymentObject } from "../../src/durable/paymentObject.ts";
import { eventMessage } from "../../src/queue/message.ts";
import seed from "../fixtures/seed-documents.json";
import { allDelivered, api, counter, createPayment, createUnrelayed, emulator, evict, behindItsBack, markUnknownAppend, settled, simulator, store, waitForPayment, writtenElsewhere, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";

const caller = { merchantId: "merchant-a", requestId: "test" };
/** Whether the object holds itself in memory (its warm-hold timer is pending). */
const held = (stub: DurableObjectStub<PaymentObject>) =>
  runInDurableObject(stub, (instance: PaymentObject) => (instance as unknown as { warmHold: unknown }).warmHold !== undefined);
const versions = async (id: string) => (await store().load(`pay:${id}`)).map((d) => d.stream.version);
const types = async (id: string) => (await store().load(`pay:${id}`)).map((d) => d.eventType);

/** Replaces the object's event store (starting its instance if it was evicted) with one that calls the real one except where overridden. */
async function wrapStore(stub: DurableObjectStub<PaymentObject>, overrides: (real: EventStore) => Partial<EventStore>) {
  await runInDurableObject(stub, (instance: PaymentObject) => {
    const o = instance as unknown as { svc: { store: EventStore } };
    const real = o.svc.store;
    const store: EventStore = {
      load: (s) => real.load(s),
      loadFrom: (s, v, l) => real.loadFrom(s, v, l),
      append: (s, e, d) => real.append(s, e, d),
      version: (s) => real.version(s),
      changedStreams: (c, n) => real.changedStreams(c, n),
      ping: () => real.ping(),
      ...overrides(real),
    };
    o.svc = { ...o.svc, store };
  });
}

/** A keyed create over HTTP while the emulator fails stored-procedure calls (429: refused; 503: outcome unknown). */
async function createWhileAppendsFail(key: string, amount: number, fault: { mode: "429" | "503"; count: number }) {
  await emulator.fault({ kind: "sproc", ...fault });
  try {
    return await api("/api/payments", { body: { amount, currency: "GBP" }, headers: { "idempotency-key": key } });
  } finally {
    await emulator.clearFaults();
  }
}

/** The versions in the object's own copy of its stream. */
const copyVersions = (stub: DurableObjectStub<PaymentObject>) =>
  runInDurableObject(stub, (_: PaymentObject, state) => state.storage.sql.exec<{ version: number }>("SELECT version FROM events ORDER BY version").toArray().map((r) => r.version));

/** Reads that come from a replica behind the latest commit while `lagging()`: nothing past `shown` is seen. */
const laggingReads = (shown: number, lagging: () => boolean) => (real: EventStore) => ({
  loadFrom: async (s: string, v: number, l?: number) => (await real.loadFrom(s, v, l)).filter((d) => !lagging() || d.stream.version <= shown),
});

/** Records every version the object reads Cosmos from. */
async function readsFrom(stub: DurableObjectStub<PaymentObject>) {
  const from: number[] = [];
  await wrapStore(stub, (real) => ({
    loadFrom: (s, version, limit) => {
      from.push(version);
      return real.loadFrom(s, version, limit);
    },
  }));
  return from;
}

describe("the payment's object", () => {
  it("serialises 100 concurrent deliveries of one step, mixed with reads: one event, contiguous versions, no conflict", async () => {
    const payment = await createPayment({ amount: 201, currency: "GBP" });
    const [initiated] = await store().load(`pay:${payment.id}`);
    const stub = env.PAYMENTS.getByName(payment.id);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? stub.onEvent(eventMessage(initiated!)) : stub.get(caller, payment.id).then((r) => ({ outcome: r.ok ? "read" : "failed" })))),
    );
    expect(results.filter((r) => r.outcome === "retry" || r.outcome === "failed")).toEqual([]);
    expect(results.filter((r) => r.outcome === "done").length).toBeLessThanOrEqual(1);
    await waitForPayment(payment.id, (p) => p.status === "completed");
    expect(await types(payment.id)).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted"]);
    expect(await versions(payment.id)).toEqual([1, 2, 3, 4]);
  });

  it("after eviction, serves the same state, loading from Cosmos only what lies beyond its own copy of the stream", async () => {
    const payment = await createPayment({ amount: 202, currency: "GBP" });
    const before = await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    await allDelivered(stub, payment.id, 4); // a delivery still on its way would load the evicted object itself
    await evictDurableObject(stub);
    const from = await readsFrom(stub);
    await emulator.resetCounters();
    expect((await api(`/api/payments/${payment.id}`)).body).toEqual(before);
    await api(`/api/payments/${payment.id}`);
    expect(await emulator.counters(payment.id)).toMatchObject({ query: 1, read: 0, sproc: 0 });
    // From its last event: the same query proves Cosmos still holds what the copy holds.
    expect(from).toEqual([4]);
    expect(await copyVersions(stub)).toEqual([1, 2, 3, 4]);
  });

  it("after eviction, drops a copy that Cosmos no longer holds (a container restored under it) and serves what Cosmos holds", async () => {
    const payment = await createPayment({ amount: 206, currency: "GBP" });
    const before = await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    // The object knows a version 5, relayed and delivered, that Cosmos lost.
    const lost = encode(`pay:${payment.id}`, 5, { type: "RefundRequested", data: { RefundId: "r-lost", Amount: 1, Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
    await runInDurableObject(stub, (_: PaymentObject, state) => {
      state.storage.sql.exec("INSERT INTO events VALUES (5, ?)", JSON.stringify(lost));
      state.storage.sql.exec("INSERT OR IGNORE INTO deliveries VALUES (5)");
      state.storage.sql.exec("UPDATE meta SET relayed_version = 5");
    });
    await evictDurableObject(stub);
    const from = await readsFrom(stub);

    expect((await api(`/api/payments/${payment.id}`)).body).toEqual(before);
    expect(from).toEqual([5, 1]);
    expect(await stub.relayStatus(payment.id)).toMatchObject({ ok: true, body: { version: 4, relayedVersion: 4, undelivered: [] } });
    expect(await copyVersions(stub)).toEqual([1, 2, 3, 4]);
    // The next command appends version 5 for real, and it is relayed and delivered.
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 } })).status).toBe(202);
    await allDelivered(stub, payment.id, 6);
    expect((await store().load(`pay:${payment.id}`)).map((d) => d.eventType).slice(4)).toEqual(["RefundRequested", "RefundSucceeded"]);
  });

  it("decides a keyed command again once Cosmos no longer holds what its recorded reply names (a container restored under the object), and pays nothing twice", async () => {
    const payment = await createPayment({ amount: 210, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const refund = (key: string) => api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 }, headers: { "idempotency-key": key } });
    const refunded = (n: number) => waitForPayment(payment.id, (p) => p.refunds.length === n && p.refunds.every((r) => r.status === "succeeded"));
    const kept = await refund("kept");
    await refunded(1);
    const lost = await refund("lost");
    await refunded(2);
    // The container is restored to version 6: the second refund's events (7 and 8) are gone.
    const streamId = `pay:${payment.id}`;
    const stub = env.PAYMENTS.getByName(payment.id);
    await evict(stub);
    for (const version of [7, 8]) await store().container.item(`${streamId}:${version}`, streamId).delete();

    // The lost refund's retry, the object's first request since: requested again, under its id...
    const lostAgain = await refund("lost");
    expect(lostAgain).toMatchObject({ status: 202, body: { id: lost.body.id, status: "pending" } });
    expect(lostAgain.headers.get("idempotent-replayed")).toBeNull();
    // ...while the refund Cosmos still holds is a repeat: the refund as it is now.
    expect(await refund("kept")).toMatchObject({ status: 202, body: { id: kept.body.id, status: "succeeded" } });
    const after = await refunded(2);
    expect((await store().load(streamId)).map((d) => d.eventType).slice(4)).toEqual(["RefundRequested", "RefundSucceeded", "RefundRequested", "RefundSucceeded"]);
    // The request's event id, the provider's Idempotency-Key, is the one it had: the provider answered the refund it
    // made, and refunded nothing twice.
    const atProvider = ((await simulator.payments()) as unknown as Json[]).find((p) => p.paymentId === after.paymentReference);
    expect(atProvider!.refunds).toHaveLength(2);
  });

  it("after eviction, keeps its copy when Cosmos's read lags behind it (a replica behind the latest commit) and serves the payment as committed", async () => {
    const payment = await createPayment({ amount: 209, currency: "GBP" });
    const before = await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    await evict(stub);
    let lagging = true;
    await wrapStore(stub, laggingReads(2, () => lagging));
    expect((await api(`/api/payments/${payment.id}`)).body).toEqual(before);
    expect(await copyVersions(stub)).toEqual([1, 2, 3, 4]);
    expect(await stub.relayStatus(payment.id)).toMatchObject({ ok: true, body: { version: 4, relayedVersion: 4, undelivered: [] } });
    lagging = false;
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 } })).status).toBe(202);
    expect((await store().load(`pay:${payment.id}`)).map((d) => d.eventType)[4]).toBe("RefundRequested");
  });

  it("follows Cosmos when it is behind the warm object (a container restored under it): the next command reloads the stream and succeeds", async () => {
    const id = await writtenElsewhere(207);
    const stub = env.PAYMENTS.getByName(id);
    expect((await api(`/api/payments/${id}`)).body.version).toBe(4);
    // The object, in memory, knows a version 5, relayed and delivered, that Cosmos lost.
    const lost = encode(`pay:${id}`, 5, { type: "RefundRequested", data: { RefundId: "r-lost", Amount: 1, Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
    await behindItsBack(stub, (instance, state) => {
      state.storage.sql.exec("INSERT INTO events VALUES (5, ?)", JSON.stringify(lost));
      state.storage.sql.exec("INSERT OR IGNORE INTO deliveries VALUES (5)");
      state.storage.sql.exec("UPDATE meta SET relayed_version = 5");
      (instance as unknown as { version: number }).version = 5;
    });

    expect((await api(`/api/payments/${id}/refunds`, { body: { amount: 2 } })).status).toBe(202);
    expect((await store().load(`pay:${id}`)).map((d) => [d.stream.version, d.eventType])).toContainEqual([5, "RefundRequested"]);
    expect((await store().load(`pay:${id}`))[4]!.eventData).toMatchObject({ Amount: 2 });
    await allDelivered(stub, id, 6);
    expect(await copyVersions(stub)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("serves what Cosmos holds when it is behind the warm object (a container restored under it): a history or a past state is not refused", async () => {
    const id = await writtenElsewhere(208);
    const stub = env.PAYMENTS.getByName(id);
    expect((await api(`/api/payments/${id}`)).body.version).toBe(4);
    await behindItsBack(stub, (instance) => void ((instance as unknown as { version: number }).version = 5)); // a version 5 Cosmos lost
    const history = await api(`/api/payments/${id}/events`);
    expect(history.status).toBe(200);
    expect(history.body.events.map((e: Json) => e.stream.version)).toEqual([1, 2, 3, 4]);
    expect(await api(`/api/payments/${id}?asOf=${encodeURIComponent(new Date().toISOString())}`)).toMatchObject({ status: 200, body: { version: 4 } });
  });

  it("runs no provider step on a state that an append of unknown outcome may have changed: a cancel that committed but answered 503 is found first", async () => {
    // The create's message waits in the queue (here: it is not sent), so the cancel finds no provider payment; the
    // object's own recovery alarm is kept from reading Cosmos first, so that only the delivery can find the cancel.
    const { id, stub } = await createUnrelayed(141, { quietAlarm: true });
    let lost = true;
    await wrapStore(stub, (real) => ({
      append: async (s, expected, docs) => {
        const result = await real.append(s, expected, docs);
        if (lost) throw ((lost = false), new Error("the answer was lost: it committed"));
        return result;
      },
    }));
    expect((await api(`/api/payments/${id}/cancel`, { body: {} })).body.code).toBe("store_unavailable");
    const [initiated] = await store().load(`pay:${id}`);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "ignored" });
    expect((await simulator.calls()).filter((c: Json) => c.route === "create" && c.body?.amount === 141)).toEqual([]);
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCancelled"]);
    expect((await api(`/api/payments/${id}`)).body.status).toBe("cancelled");
  });

  /** A store whose first append times out while its request is still on its way to Cosmos: it commits when `land()` is called. */
  async function appendInFlight(stub: DurableObjectStub<PaymentObject>, overrides: (real: EventStore) => Partial<EventStore> = () => ({}), timeoutMs = 0) {
    let land: (() => Promise<unknown>) | undefined;
    let gaveUpAt = 0;
    await wrapStore(stub, (real) => ({
      append: async (s, expected, docs) => {
        if (land) return real.append(s, expected, docs);
        land = () => real.append(s, expected, docs);
        // The client's wait before it gives up (simulated latency, not a wait for async work).
        if (timeoutMs > 0) await new Promise((r) => setTimeout(r, timeoutMs));
        gaveUpAt = Date.now();
        throw new EventStoreError("timeout", "Cosmos DB request timed out");
      },
      ...overrides(real),
    }));
    return { land: () => land!(), gaveUpAt: () => gaveUpAt };
  }

  it.each([
    ["stays in memory", false],
    ["is evicted meanwhile", true],
  ])("holds provider steps back while an append of unknown outcome could still commit: a cancel landing late is honoured (the object %s)", async (_, evicted) => {
    // As above: the create's message is held back and the object's own alarm stays out of Cosmos.
    const amount = evicted ? 146 : 142;
    const { id, stub } = await createUnrelayed(amount, { quietAlarm: true, settleMs: 60_000 });
    const cancel = await appendInFlight(stub);
    expect((await api(`/api/payments/${id}/cancel`, { body: {} })).body.code).toBe("store_unavailable");
    const [initiated] = await store().load(`pay:${id}`);
    const held = await stub.onEvent(eventMessage(initiated!));
    expect(held).toMatchObject({ outcome: "later", reason: expect.stringMatching(/not known yet/) });
    expect((held as { afterMs: number }).afterMs).toBeGreaterThan(50_000);
    await cancel.land();
    if (evicted) await evict(stub);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "ignored" });
    expect((await simulator.calls()).filter((c: Json) => c.route === "create" && c.body?.amount === amount)).toEqual([]);
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCancelled"]);
    // Reading the cancel (the tail, or the load's) settled the unknown outcome: the next delivery reads nothing more.
    const from = await readsFrom(stub);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "ignored" });
    expect(from).toEqual([]);
  });

  it("runs no provider step once an unknown append's window is over while Cosmos's reads lag behind the cancel that landed: retried until the cancel shows", async () => {
    const { id, stub } = await createUnrelayed(153, { quietAlarm: true, settleMs: 0 });
    let lagging = true;
    const cancel = await appendInFlight(stub, laggingReads(1, () => lagging));
    expect((await api(`/api/payments/${id}/cancel`, { body: {} })).body.code).toBe("store_unavailable");
    await cancel.land();
    const [initiated] = await store().load(`pay:${id}`);
    expect(await stub.onEvent(eventMessage(initiated!))).toMatchObject({ outcome: "retry", reason: expect.stringMatching(/do not show yet/) });
    lagging = false;
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "ignored" });
    expect((await simulator.calls()).filter((c: Json) => c.route === "create" && c.body?.amount === 153)).toEqual([]);
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCancelled"]);
  });

  it("replays a keyed refund of all that is left whose append landed after answering 503, though nothing is left now", async () => {
    const { id } = await waitForPayment((await createPayment({ amount: 231, currency: "GBP" })).id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(id);
    const refund = await appendInFlight(stub);
    const headers = { "idempotency-key": crypto.randomUUID() };
    expect((await api(`/api/payments/${id}/refunds`, { method: "POST", headers })).body.code).toBe("store_unavailable");
    await refund.land();
    await evict(stub);
    const retried = await api(`/api/payments/${id}/refunds`, { method: "POST", headers });
    expect(retried).toMatchObject({ status: 202, body: { object: "refund", amount: 231 } });
    expect((await store().load(`pay:${id}`)).filter((d) => d.eventType === "RefundRequested")).toHaveLength(1);
  });

  it("keeps what Cosmos stored when a keyed refund's retry finds it committed under the same ids (its answer was lost): the copy is Cosmos's, not the retry's", async () => {
    const { id } = await waitForPayment((await createPayment({ amount: 232, currency: "GBP" })).id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(id);
    // Nothing but the retry may find what landed: every delivery is confirmed (a delivery reads the tail while an
    // append's outcome is unknown), and the object's own recovery alarm stays out of Cosmos.
    await vi.waitFor(async () => expect(await stub.relayStatus(id)).toMatchObject({ body: { undelivered: [] } }), { timeout: 10_000, interval: 50 });
    await runInDurableObject(stub, (instance) => {
      const o = instance as unknown as { svc: { config: object } };
      o.svc = { ...o.svc, config: { ...o.svc.config, RELAY_CHECK_MS: 600_000 } };
    });
    const refund = await appendInFlight(stub);
    const request = { body: { amount: 2 }, headers: { "idempotency-key": crypto.randomUUID() } };
    expect((await api(`/api/payments/${id}/refunds`, request)).body.code).toBe("store_unavailable");
    await refund.land();
    // The same object, warm: the retry decides the refund again, with the same event id (see eventIdFor), another time
    // and another request id; Cosmos holds the first attempt's.
    const retried = await api(`/api/payments/${id}/refunds`, request);
    const stored = (await store().load(`pay:${id}`)).slice(0, 5);
    const requested = stored[4]!;
    expect(requested.eventType).toBe("RefundRequested");
    expect(retried).toMatchObject({ status: 202, body: { id: requested.eventData.RefundId, requestedAt: requested.eventData.Timestamp } });
    const copy = await behindItsBack(stub, (_, state) => state.storage.sql.exec<{ doc: string }>("SELECT doc FROM events WHERE version <= 5 ORDER BY version").toArray().map((r) => JSON.parse(r.doc)));
    expect(copy).toEqual(stored);
  });

  it("counts the window in which an unknown append could still land from when the client gave up on it", async () => {
    const { id, stub } = await createUnrelayed(151, { quietAlarm: true, settleMs: 60_000 });
    const cancel = await appendInFlight(stub, undefined, 1_000);
    expect((await api(`/api/payments/${id}/cancel`, { body: {} })).body.code).toBe("store_unavailable");
    const [initiated] = await store().load(`pay:${id}`);
    const held = await stub.onEvent(eventMessage(initiated!));
    const sinceGaveUp = Date.now() - cancel.gaveUpAt();
    // Counted from when it was sent, a second less would be left.
    expect((held as { afterMs: number }).afterMs).toBeGreaterThanOrEqual(60_000 - sinceGaveUp);
  });

  it("keeps the unknown outcome's marker through a conflict whose tail read fails, so the late cancel is still found before the create step", async () => {
    const { id, stub } = await createUnrelayed(148, { quietAlarm: true, settleMs: 60_000 });
    let failRead = false;
    const cancel = await appendInFlight(stub, (real) => ({
      loadFrom: async (s, v, l) => {
        if (failRead) throw ((failRead = false), new EventStoreError("unavailable", "Cosmos DB unavailable (503)"));
        return real.loadFrom(s, v, l);
      },
    }));
    const headers = { "idempotency-key": crypto.randomUUID() };
    expect((await api(`/api/payments/${id}/cancel`, { body: {}, headers })).body.code).toBe("store_unavailable");
    await cancel.land();
    // The merchant retries: its append conflicts with the landed cancel, and reading the tail then fails.
    failRead = true;
    expect((await api(`/api/payments/${id}/cancel`, { body: {}, headers })).status).toBe(503);
    const [initiated] = await store().load(`pay:${id}`);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "ignored" });
    expect((await simulator.calls()).filter((c: Json) => c.route === "create" && c.body?.amount === 148)).toEqual([]);
    expect((await api(`/api/payments/${id}`)).body.status).toBe("cancelled");
  });

  // Cosmos's hint when it throttled (3.5 s: Retry-After 4; 0 ms: at least 1), else a second.
  it.each([
    ["throttled", 3_500, 144, "4"],
    ["throttled", 0, 146, "1"],
    ["rejected", undefined, 145, "1"],
  ] as const)("never holds steps back for a refused append (%s, hint %s ms): it did not commit", async (kind, hintMs, amount, retryAfter) => {
    const { id, stub } = await createUnrelayed(amount, { quietAlarm: true, settleMs: 60_000 });
    let failWith: EventStoreError | undefined = new EventStoreError(kind, "refused", hintMs);
    await wrapStore(stub, (real) => ({
      append: async (s, expected, docs) => {
        const e = failWith;
        if (e) throw ((failWith = undefined), e);
        return real.append(s, expected, docs);
      },
    }));
    const answered = await api(`/api/payments/${id}/cancel`, { body: {} });
    expect(answered.status).toBe(503);
    expect(answered.headers.get("retry-after")).toBe(retryAfter);
    const [initiated] = await store().load(`pay:${id}`);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "done" });
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCreated"]);
  });

  it("runs a held step once the append of unknown outcome is older than RELAY_SETTLE_MS (it can no longer land)", async () => {
    const { id, stub } = await createUnrelayed(147, { quietAlarm: true, settleMs: 60_000 });
    const [initiated] = await store().load(`pay:${id}`);
    await markUnknownAppend(stub, Date.now());
    expect(await stub.onEvent(eventMessage(initiated!))).toMatchObject({ outcome: "later", reason: expect.stringMatching(/not known yet/) });
    await markUnknownAppend(stub, Date.now() - 61_000);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "done" });
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCreated"]);
  });

  it("answers a delivery 'retry', never 'ignored', while Cosmos does not yet show the event it carries (a lagging read)", async () => {
    const id = await writtenElsewhere(143);
    const docs = await store().load(`pay:${id}`);
    const stub = env.PAYMENTS.getByName(id);
    // The object knows the stream up to version 1; reads then lag behind what the relay saw committed.
    let lagging = true;
    const shown = (docs: EventDocument[]) => docs.filter((d) => !lagging || d.stream.version <= 1);
    await wrapStore(stub, (real) => ({ load: async (s) => shown(await real.load(s)), loadFrom: async (s, v, l) => shown(await real.loadFrom(s, v, l)) }));
    expect(await stub.onEvent(eventMessage(docs[1]!))).toMatchObject({ outcome: "retry" });
    lagging = false;
    expect(await stub.onEvent(eventMessage(docs[1]!))).not.toMatchObject({ outcome: "retry" });
  });

  it("frees an Idempotency-Key whose append Cosmos refused (429): a retry with another amount is decided afresh", async () => {
    const key = crypto.randomUUID();
    expect(await createWhileAppendsFail(key, 211, { mode: "429", count: 1000 })).toMatchObject({ status: 503, body: { code: "store_unavailable" } });
    const retried = await api("/api/payments", { body: { amount: 212, currency: "GBP" }, headers: { "idempotency-key": key } });
    expect(retried).toMatchObject({ status: 201, body: { amount: 212 } });
    await waitForPayment(retried.body.id, (p) => p.status === "completed");
  });

  it("keeps an Idempotency-Key claimed while its append's outcome is unknown (503): another amount is refused, the same creates the payment once", async () => {
    const key = crypto.randomUUID();
    expect(await createWhileAppendsFail(key, 213, { mode: "503", count: 1 })).toMatchObject({ status: 503, body: { code: "store_unavailable" } });
    const other = await api("/api/payments", { body: { amount: 214, currency: "GBP" }, headers: { "idempotency-key": key } });
    expect(other).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });
    const same = await api("/api/payments", { body: { amount: 213, currency: "GBP" }, headers: { "idempotency-key": key } });
    expect(same).toMatchObject({ status: 201, body: { amount: 213 } });
    await waitForPayment(same.body.id, (p) => p.status === "completed");
    expect(await types(same.body.id)).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted"]);
  });

  it("records a payment the provider says was cancelled (a cancel whose append failed after the provider's cancel) as cancelled, not failed, when settling it", async () => {
    const { id, stub } = await createUnrelayed(72, { quietAlarm: true });
    const s = `pay:${id}`;
    const [initiated] = await store().load(s);
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "done" });
    const created = (await store().load(s))[1]!;
    expect((await simulator.cancel(String(created.eventData.PaymentReference))).status).toBe(200);
    expect(await stub.onEvent(eventMessage(created))).toEqual({ outcome: "done" });
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentCancelled"]);
    expect(await stub.get({ merchantId: "merchant-a", requestId: "test" }, id)).toMatchObject({ ok: true, body: { status: "cancelled" } });
  });

  it("confirms a delivery only once its step ran: one answered 'retry' stays undelivered, so a lost retry is sent again", async () => {
    const { id, stub } = await createUnrelayed(73, { quietAlarm: true });
    const [initiated] = await store().load(`pay:${id}`);
    await simulator.settings({ failNext: { route: "create", count: 1, status: 503 } });
    expect(await stub.onEvent(eventMessage(initiated!))).toMatchObject({ outcome: "retry" });
    expect(await stub.relayStatus(id)).toMatchObject({ ok: true, body: { undelivered: [1] } });
    expect(await stub.onEvent(eventMessage(initiated!))).toEqual({ outcome: "done" });
    // Version 1 confirmed; the step's own PaymentCreated (2) went into this object's losing queue.
    expect(await stub.relayStatus(id)).toMatchObject({ ok: true, body: { version: 2, undelivered: [2] } });
  });

  it("reads the tail before stalling a dead-lettered step: a step whose outcome an append of unknown outcome committed is not stalled", async () => {
    const { id, stub } = await createUnrelayed(71, { quietAlarm: true });
    const s = `pay:${id}`;
    const [initiated] = await store().load(s);
    // The create step's outcome, committed by an append whose answer the object never got (its marker says so).
    const created = encode(s, 2, { type: "PaymentCreated", data: { PaymentReference: "ref-lost-answer", Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
    expect(await store().append(s, 1, [created])).toEqual({ ok: true, version: 2 });
    await markUnknownAppend(stub, Date.now());
    expect(await stub.onExhausted(eventMessage(initiated!))).toEqual({ outcome: "ignored" });
    expect(await types(id)).toEqual(["PaymentInitiated", "PaymentCreated"]);
  });

  it("frees a keyed refund's Idempotency-Key when its command fails before anything could commit (a conflict whose tail read fails): another amount is then accepted", async () => {
    const payment = await createPayment({ amount: 60, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const s = `pay:${payment.id}`;
    const behind = encode(s, 5, { type: "RefundRequested", data: { RefundId: "r-behind", Amount: 5, Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
    expect(await store().append(s, 4, [behind])).toEqual({ ok: true, version: 5 });
    const key = crypto.randomUUID();
    const refund = (amount: number) => api(`/api/payments/${payment.id}/refunds`, { body: { amount }, headers: { "idempotency-key": key } });
    await emulator.fault({ kind: "query", mode: "503", count: 40 });
    try {
      // The append at version 4 conflicts, and reading the missing tail fails: nothing of this refund committed.
      expect(await refund(20)).toMatchObject({ status: 503, body: { code: "store_unavailable" } });
    } finally {
      await emulator.clearFaults();
    }
    expect(await refund(30)).toMatchObject({ status: 202, body: { amount: 30 } });
    const after = await waitForPayment(payment.id, (p) => p.refunds.length === 2 && p.refunds.every((r) => r.status !== "pending"));
    expect(after.refunds.map((r) => r.amount).sort()).toEqual([30, 5]);
  });

  it("answers 503 store_unavailable (and a delivery 'retry') when Cosmos fails the first load of a stream written elsewhere, and serves it once Cosmos is back", async () => {
    const id = await writtenElsewhere(203);
    const [initiated] = await store().load(`pay:${id}`);
    await emulator.fault({ kind: "query", mode: "503", count: 40 });
    try {
      const failed = await api(`/api/payments/${id}`);
      expect(failed.status).toBe(503);
      expect(failed.body.code).toBe("store_unavailable");
      expect(failed.headers.get("retry-after")).toBe("1");
      // A delivery meanwhile is answered "retry" (the queue backs off), not thrown.
      expect(await env.PAYMENTS.getByName(id).onEvent(eventMessage(initiated!))).toMatchObject({ outcome: "retry" });
    } finally {
      await emulator.clearFaults();
    }
    expect((await api(`/api/payments/${id}`)).body).toMatchObject({ id, status: "completed", amount: 203, version: 4 });
  });

  it("creates a payment whose id a read was looking up at that very moment (the read wrote nothing)", async () => {
    const key = crypto.randomUUID();
    const id = uuidFrom("payment", "merchant-a", key);
    const stub = env.PAYMENTS.getByName(id);
    let entered!: () => void;
    const reading = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await wrapStore(stub, (real) => ({
      loadFrom: async (s, v, l) => {
        entered();
        await gate;
        return real.loadFrom(s, v, l);
      },
    }));
    const read = api(`/api/payments/${id}`);
    await reading;
    const create = api("/api/payments", { body: { amount: 208, currency: "GBP" }, headers: { "idempotency-key": key } });
    release();
    expect((await read).status).toBe(404);
    expect((await create).status).toBe(201);
    await waitForPayment(id, (p) => p.status === "completed");
  });

  it("creates a new payment without asking storage for an alarm (a new object has none), and sets the relay's alarm", async () => {
    const key = crypto.randomUUID();
    const id = uuidFrom("payment", "merchant-a", key);
    const stub = env.PAYMENTS.getByName(id);
    const asked = await runInDurableObject(stub, (_: PaymentObject, state) => {
      const calls = { getAlarm: 0 };
      const getAlarm = state.storage.getAlarm.bind(state.storage);
      state.storage.getAlarm = (...args) => (calls.getAlarm++, getAlarm(...args));
      return calls;
    });
    const created = await api("/api/payments", { body: { amount: 209, currency: "GBP" }, headers: { "idempotency-key": key } });
    expect(created.status).toBe(201);
    expect(asked.getAlarm).toBe(0);
    await waitForPayment(id, (p) => p.status === "completed");
    // Once nothing is due (every delivery confirmed too) the object deletes its alarm, which it knew it had set.
    await vi.waitFor(async () => expect(await runInDurableObject(stub, (_: PaymentObject, state) => state.storage.getAlarm())).toBeNull(), { timeout: 10_000, interval: 50 });
  });

  it("retries its alarm itself, with backoff, while Cosmos fails it, and finishes the check once Cosmos is back", async () => {
    const payment = await createPayment({ amount: 205, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    // Every delivery confirmed first: one still on its way would fail while Cosmos does, and rightly keep an alarm for
    // its redelivery after the check succeeds (seen on a loaded machine).
    await allDelivered(stub, payment.id, 4);
    const stateOf = () =>
      runInDurableObject(stub, async (_: PaymentObject, state) => ({
        alarm: await state.storage.getAlarm(),
        round: counter(state, "alarm-round") ?? 0,
        pending: state.storage.sql.exec<{ p: number | null }>("SELECT pending_since AS p FROM meta").one().p,
      }));
    // An append of unknown outcome, long enough ago to settle: the alarm must read the tail from Cosmos, which fails.
    const pendingSince = Date.now() - 5000;
    await emulator.fault({ kind: "query", mode: "503", count: 10_000 });
    try {
      await behindItsBack(stub, async (instance, state) => {
        state.storage.sql.exec("UPDATE meta SET pending_since = ?", pendingSince);
        await state.storage.setAlarm(Date.now());
      });
      // The alarms keep firing (every RELAY_CHECK_MS, doubled per failed round), each failing and re-arming.
      // Each failed round re-arms at least RELAY_CHECK_MS * 2^(round - 1) after the alarm before it fired.
      const armed = new Map<number, number>();
      await vi.waitFor(
        async () => {
          const { round, alarm } = await stateOf();
          if (alarm !== null && !armed.has(round)) armed.set(round, alarm);
          expect(armed.has(2) && armed.has(3)).toBe(true);
        },
        { timeout: 10_000, interval: 25 },
      );
      expect(armed.get(3)! - armed.get(2)!).toBeGreaterThanOrEqual(loadConfig(env).RELAY_CHECK_MS * 2 ** 2);
      const failing = await stateOf();
      expect(failing.pending).toBe(pendingSince);
      expect(failing.alarm).not.toBeNull();
    } finally {
      await emulator.clearFaults();
    }
    await vi.waitFor(async () => expect(await stateOf()).toEqual({ alarm: null, round: 0, pending: null }), { timeout: 15_000, interval: 50 });
  });

  describe("when Cosmos's reads come from a replica behind its latest commits (reads carry no session token)", () => {
    /** A completed payment, every delivery confirmed and Cosmos quiet: the stale reads injected next are its own. */
    async function completed(amount: number) {
      const payment = await createPayment({ amount, currency: "GBP" });
      await waitForPayment(payment.id, (p) => p.status === "completed");
      await allDelivered(env.PAYMENTS.getByName(payment.id), payment.id, 4);
      await emulator.quiet();
      return payment;
    }
    const stale = async <T>(id: string, count: number, run: () => Promise<T>) => {
      await emulator.fault({ kind: "query", mode: "stale", documents: 1, count, partition: `pay:${id}` });
      try {
        return await run();
      } finally {
        await emulator.clearFaults();
      }
    };

    it("reads a history or a past state again rather than serve one short of what it knows committed, and answers 503 if it stays short", async () => {
      const payment = await completed(61);
      const history = await stale(payment.id, 1, () => api(`/api/payments/${payment.id}/events`));
      expect(history).toMatchObject({ status: 200, body: { nextFromVersion: null } });
      expect(history.body.events.map((e: Json) => e.stream.version)).toEqual([1, 2, 3, 4]);
      expect(await stale(payment.id, 1, () => api(`/api/payments/${payment.id}?atVersion=4`))).toMatchObject({ status: 200, body: { version: 4, status: "completed" } });
      const short = await stale(payment.id, 2, () => api(`/api/payments/${payment.id}/events?fromVersion=3`));
      expect(short).toMatchObject({ status: 503, body: { code: "store_unavailable" } });
      expect(short.headers.get("retry-after")).toBe("1");
    });

    it("answers a command 503 after a conflict whose tail read stays behind, instead of appending again at a version it knows taken", async () => {
      const payment = await completed(62);
      const s = `pay:${payment.id}`;
      const behind = encode(s, 5, { type: "RefundRequested", data: { RefundId: "r-stale", Amount: 1, Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
      expect(await store().append(s, 4, [behind])).toEqual({ ok: true, version: 5 });
      await emulator.resetCounters();
      const refund = await stale(payment.id, 10, () => api(`/api/payments/${payment.id}/refunds`, { body: { amount: 2 } }));
      expect(refund).toMatchObject({ status: 503, body: { code: "store_unavailable" } });
      // One append, two reads of the tail, and the version as appends see it (ahead of both reads: not a restore).
      expect(await emulator.counters(payment.id)).toMatchObject({ sproc: 2, query: 2 });
      // Once reads catch up, the same request goes through.
      expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 2 } })).status).toBe(202);
    });
  });

  it.each([["warm"], ["cold"]] as const)("re-syncs a %s object after a document written behind its back, reading only the missing tail, and its command succeeds", async (temperature) => {
    const payment = await createPayment({ amount: 50, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    await allDelivered(env.PAYMENTS.getByName(payment.id), payment.id, 4);
    const s = `pay:${payment.id}`;
    const behind = encode(s, 5, { type: "RefundRequested", data: { RefundId: "r-behind", Amount: 10, Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
    expect(await store().append(s, 4, [behind])).toEqual({ ok: true, version: 5 });
    const stub = env.PAYMENTS.getByName(payment.id);
    if (temperature === "cold") await evictDurableObject(stub);
    const from = await readsFrom(stub);
    await emulator.resetCounters();
    const refund = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 40 } });
    expect(refund.status).toBe(202);
    expect((await emulator.counters(payment.id)).query).toBe(1);
    // The missing tail only: after the conflict (warm), or from the copy's last event on (cold).
    expect(from).toEqual([temperature === "warm" ? 5 : 4]);
    const after = await waitForPayment(payment.id, (p) => p.refunds.length === 2 && p.refunds.every((r) => r.status !== "pending"));
    expect(after.refundedAmount).toBe(50);
    const v = await versions(payment.id);
    expect(v).toEqual(v.map((_, i) => i + 1));
  });

  it("writes its relay's bookkeeping behind, within WRITE_BEHIND_MS when nothing else writes, and all of it by the lifecycle's end", async () => {
    // The settlement is held at the provider (and not given up on), and the relay check's alarm is far off: after the
    // create step, nothing else writes.
    await simulator.settings({ hold: ["settle"] });
    const key = crypto.randomUUID();
    const stub = () => env.PAYMENTS.getByName(uuidFrom("payment", "merchant-a", key));
    await runInDurableObject(stub(), (instance: PaymentObject) => {
      const o = instance as unknown as { svc: { config: { RELAY_CHECK_MS: number }; provider: { timeoutMs: number } } };
      o.svc = { ...o.svc, config: { ...o.svc.config, RELAY_CHECK_MS: 600_000 }, provider: { ...o.svc.provider, timeoutMs: 600_000 } };
    });
    let payment;
    const tables = () =>
      runInDurableObject(stub(), (_: PaymentObject, state) => ({
        relayed: state.storage.sql.exec<{ v: number }>("SELECT relayed_version AS v FROM meta").one().v,
        kept: state.storage.sql.exec<{ v: number }>("SELECT version AS v FROM events ORDER BY version").toArray().map((r) => r.v),
        delivered: state.storage.sql.exec<{ v: number }>("SELECT version AS v FROM deliveries ORDER BY version").toArray().map((r) => r.v),
      }));
    try {
      payment = (await api("/api/payments", { body: { amount: 206, currency: "GBP" }, headers: { "idempotency-key": key } })).body as { id: string };
      await waitForPayment(payment.id, (p) => p.status === "created");
      // Polled from storage, not asked of the object (which would write it on the way): the timer writes it.
      await vi.waitFor(async () => expect(await tables()).toEqual({ relayed: 2, kept: [1, 2], delivered: [1] }), { timeout: 5_000, interval: 25 });
    } finally {
      await simulator.settings({ hold: [] });
    }
    await waitForPayment(payment.id, (p) => p.status === "completed");
    await vi.waitFor(async () => expect(await tables()).toEqual({ relayed: 4, kept: [1, 2, 3, 4], delivered: [1, 2, 3, 4] }), { timeout: 5_000, interval: 25 });
  });

  it("holds itself in memory (a pending timer) while its lifecycle is in flight, and lets go once nothing is due", async () => {
    // Its create step is held at the provider: the lifecycle is in flight until the test lets it go.
    await simulator.settings({ hold: ["create"] });
    let payment;
    try {
      payment = await createPayment({ amount: 205, currency: "GBP" });
      await settled(env.PAYMENTS.getByName(payment.id), payment.id);
      expect(await held(env.PAYMENTS.getByName(payment.id))).toBe(true);
    } finally {
      await simulator.settings({ hold: [] });
    }
    await waitForPayment(payment.id, (p) => p.status === "completed");
    // Released once the consumer has confirmed the last delivery: nothing is due, the platform may evict it.
    await vi.waitFor(async () => expect(await held(env.PAYMENTS.getByName(payment.id))).toBe(false), { timeout: 10_000, interval: 50 });
  });

  it("keeps one warm-hold timer, moved on only when it fires before the last activity's WARM_HOLD_MS is up", async () => {
    const payment = await createPayment({ amount: 209, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    type Hold = { warmHold: ReturnType<typeof setTimeout> | undefined; warmUntil: number; holdWarm(inFlight: boolean): void; warmHoldDue(): void };
    await runInDurableObject(env.PAYMENTS.getByName(payment.id), (instance: PaymentObject) => {
      const o = instance as unknown as Hold;
      /** As if its pending timer fired now (that timer is cleared, so no other is left behind). */
      const fire = () => (clearTimeout(o.warmHold), o.warmHoldDue());
      o.holdWarm(true);
      const timer = o.warmHold;
      const until = o.warmUntil;
      expect(timer).toBeDefined();
      o.holdWarm(true);
      expect(o.warmHold).toBe(timer); // not set again
      expect(o.warmUntil).toBeGreaterThanOrEqual(until);
      fire(); // while the hold still has time left: a timer for the rest
      expect(o.warmHold).toBeDefined();
      expect(o.warmHold).not.toBe(timer);
      o.warmUntil = Date.now() - 1;
      fire(); // once it is up: let go
      expect(o.warmHold).toBeUndefined();
      o.holdWarm(true);
      o.holdWarm(false); // nothing in flight: let go at once
      expect(o.warmHold).toBeUndefined();
    });
  });

  it("counts a delivery only for the event it holds at that version, not for another event once at that version (lost in a restore)", async () => {
    const payment = await createPayment({ amount: 208, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    await allDelivered(stub, payment.id, 4);
    await behindItsBack(stub, (o, state) => {
      state.storage.sql.exec("DELETE FROM deliveries WHERE version = 4");
    });
    const completed = (await store().load(`pay:${payment.id}`))[3]!;
    expect(await stub.onEvent({ ...eventMessage(completed), eventId: crypto.randomUUID() })).toEqual({ outcome: "ignored" });
    expect(await stub.relayStatus(payment.id)).toMatchObject({ body: { undelivered: [4] } });
    expect(await stub.onEvent(eventMessage(completed))).toEqual({ outcome: "ignored" });
    expect(await stub.relayStatus(payment.id)).toMatchObject({ body: { undelivered: [] } });
  });

  it("is not held in memory by its own recovery alarm: a payment waiting on a lost delivery can hibernate", async () => {
    const payment = await createPayment({ amount: 206, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    await vi.waitFor(async () => expect(await held(stub)).toBe(false), { timeout: 10_000, interval: 50 });
    // The Completed message's delivery is forgotten, as if the message had been lost; the alarm checks on it.
    await behindItsBack(stub, (o, state) => {
      state.storage.sql.exec("DELETE FROM deliveries WHERE version = 4");
      return state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.relayStatus(payment.id)).toMatchObject({ ok: true, body: { undelivered: [4] } });
    expect(await held(stub)).toBe(false);
  });

  it("answers 409 with a clear code when appends keep conflicting", async () => {
    const payment = await createPayment({ amount: 203, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    // Another writer always one ahead: each read shows the version the conflict reported (an event the object does
    // not know, skipped), and the next append finds the version after it taken.
    await wrapStore(stub, () => ({
      loadFrom: async (s, from) => [eventDocument(s, from, "SomeoneElsesEvent", {}, crypto.randomUUID(), { correlationId: null, causationId: null })],
      append: async (_s, expected) => ({ ok: false, currentVersion: expected + 1 }),
    }));
    const res = await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 } });
    expect(res).toMatchObject({ status: 409, body: { code: "version_conflict" } });
    await evictDurableObject(stub);
  });

  it("answers the state as it was at each version and at each time", async () => {
    const payment = await createPayment({ amount: 204, currency: "USD" });
    const done = await waitForPayment(payment.id, (p) => p.status === "completed");
    const statuses = ["initiated", "created", "settled", "completed"];
    for (const [i, status] of statuses.entries()) {
      const res = await api(`/api/payments/${payment.id}?atVersion=${i + 1}`);
      expect(res.body).toMatchObject({ status, version: i + 1, amount: 204 });
    }
    const times = [done.initiatedAt, done.createdAt, done.settledAt, done.completedAt];
    for (const [i, at] of times.entries()) expect((await api(`/api/payments/${payment.id}?asOf=${encodeURIComponent(at!)}`)).body.status).toBe(statuses[i]);
    expect((await api(`/api/payments/${payment.id}?atVersion=5`)).body.code).toBe("version_not_found");
    expect((await api(`/api/payments/${payment.id}?asOf=2020-01-01T00:00:00Z`)).status).toBe(404);
    expect((await api(`/api/payments/${payment.id}?atVersion=2`, { key: keys.merchantB })).status).toBe(404);
  });

  it("answers a time as the stream up to its first later event, even where writers' clocks disagree", async () => {
    // Written by hosts whose clocks differ: the settlement's time is earlier than the creation's before it.
    const id = crypto.randomUUID();
    const s = `pay:${id}`;
    const t = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 12, 0, seconds)).toISOString();
    const docs = [
      { type: "PaymentInitiated", data: { PaymentId: id, Amount: 12, Currency: "GBP", MerchantId: "merchant-a", Timestamp: t(0) } },
      { type: "PaymentCreated", data: { PaymentReference: `ref-${id}`, Timestamp: t(20) } },
      { type: "PaymentSettled", data: { PaymentReference: `ref-${id}`, Timestamp: t(10) } },
    ].map((e, i) => encode(s, i + 1, e as Parameters<typeof encode>[2], { eventId: crypto.randomUUID(), correlationId: null, causationId: null }));
    expect(await store().append(s, 0, docs)).toEqual({ ok: true, version: 3 });
    // At 15 s, only the initiation is known to have happened: not a settlement without its creation.
    expect((await api(`/api/payments/${id}?asOf=${t(15)}`)).body).toMatchObject({ status: "initiated", version: 1 });
    expect((await api(`/api/payments/${id}?asOf=${t(25)}`)).body).toMatchObject({ status: "settled", version: 3 });
  });

  it("compares times past milliseconds, as .NET writes them (seven digits of a second)", async () => {
    const id = crypto.randomUUID();
    const s = `pay:${id}`;
    const docs = [
      { type: "PaymentInitiated", data: { PaymentId: id, Amount: 12, Currency: "GBP", MerchantId: "merchant-a", Timestamp: "2026-01-01T12:00:00.0000000Z" } },
      { type: "PaymentCreated", data: { PaymentReference: `ref-${id}`, Timestamp: "2026-01-01T12:00:01.0004673Z" } },
    ].map((e, i) => encode(s, i + 1, e as Parameters<typeof encode>[2], { eventId: crypto.randomUUID(), correlationId: null, causationId: null }));
    expect(await store().append(s, 0, docs)).toEqual({ ok: true, version: 2 });
    const statusAt = async (asOf: string) => (await api(`/api/payments/${id}?asOf=${encodeURIComponent(asOf)}`)).body.status;
    // Within the creation's millisecond, before it: not yet created.
    expect(await statusAt("2026-01-01T12:00:01.000Z")).toBe("initiated");
    expect(await statusAt("2026-01-01T12:00:01.0004672Z")).toBe("initiated");
    expect(await statusAt("2026-01-01T12:00:01.0004673Z")).toBe("created");
    expect(await statusAt("2026-01-01T13:00:01.0005+01:00")).toBe("created");
  });

  it("serves Regis Pay's own four documents to the legacy merchant as a completed 86.1 GBP payment", async () => {
    const container = store().container;
    for (const doc of seed.documents) {
      const { _rid, _self, _etag, _attachments, _ts, ...body } = doc as Json;
      await container.items.create(body);
    }
    const res = await api("/api/payments/7551548a-b366-4081-9330-ae19bfc5557f");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: "7551548a-b366-4081-9330-ae19bfc5557f",
      status: "completed",
      amount: 86.1,
      currency: "GBP",
      paymentReference: "ff7fc400-783e-4070-8a91-bfb3b906729f",
      version: 4,
      initiatedAt: "2024-04-06T00:02:14.9984673Z",
      completedAt: "2024-04-06T00:02:30.0929079Z",
    });
    expect((await api("/api/payments/7551548a-b366-4081-9330-ae19bfc5557f", { key: keys.merchantB })).status).toBe(404);
    const history = await api("/api/payments/7551548a-b366-4081-9330-ae19bfc5557f/events");
    expect(history.body.events.map((e: Json) => e.id)).toEqual(seed.documents.map((d) => d.id));
  });
});
