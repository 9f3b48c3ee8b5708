import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { EventDocument } from "../../src/core/eventStore.ts";
import { uuidFrom } from "../../src/core/ids.ts";
import { encode, replay } from "../../src/cosmos/codec.ts";
import { loadConfig } from "../../src/config.ts";
import type { ArmedCrash, PaymentObject } from "../../src/durable/paymentObject.ts";
import worker from "../../src/index.ts";
import { paymentSummary, type PaymentResource } from "../../src/payment/resource.ts";
import { initialState, type Payment } from "../../src/payment/state.ts";
import { eventMessage } from "../../src/queue/message.ts";
import { api, counter, createPayment, notified, createUnrelayed, evict, behindItsBack, setCounter, markUnknownAppend, simulator, store, waitForAll, waitForPayment, whileListFails, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";

const terminal = (p: PaymentResource) => ["completed", "failed", "cancelled"].includes(p.status);
const history = (id: string) => store().load(`pay:${id}`);
const types = (docs: EventDocument[]) => docs.map((d) => d.eventType);
const lifecycle = ["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted"];

/** Provider calls made for one payment (found by its provider reference, or by the amount for creates). */
async function callsFor(payment: PaymentResource) {
  return (await simulator.calls()).filter(
    (c: Json) => c.paymentId === payment.paymentReference || (c.route === "create" && c.body?.amount === payment.amount) || (c.route === "notify" && c.body?.id === payment.id),
  );
}

/** Delivers messages straight to the Worker's queue handler, as the queue would; `sent` records what the consumer sends itself (then not sent). */
async function deliver(docs: EventDocument[], sent?: { body: Json; options?: QueueSendOptions }[], extra: Json = {}, queue = "payment-events") {
  const batch = createMessageBatch<unknown>(
    queue,
    docs.map((d, i) => ({ id: `${d.id}-${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body: { ...eventMessage(d), ...extra } })),
  );
  // The harness's result keeps which messages were retried, not their delays: those are recorded here.
  const delays: (number | undefined)[] = [];
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    m.retry = (options) => (delays.push(options?.delaySeconds), retry(options));
  }
  const ctx = createExecutionContext();
  const events = sent ? ({ send: async (body: Json, options?: QueueSendOptions) => void sent.push({ body, options }) } as unknown as Queue) : env.EVENTS;
  await worker.queue(batch as MessageBatch<unknown>, { ...env, EVENTS: events });
  return { ...(await getQueueResult(batch, ctx)), delays };
}

/** The versions whose delivery the consumer has confirmed to the payment's object. */
const reported = (stub: DurableObjectStub<PaymentObject>) =>
  runInDurableObject(stub, (_: PaymentObject, state) => state.storage.sql.exec<{ version: number }>("SELECT version FROM deliveries ORDER BY version").toArray().map((r) => r.version));

afterEach(async () => {
  await simulator.reset();
});

describe("a payment created over HTTP", () => {
  it("reaches completed with exactly four events in the seed's shape", async () => {
    const payment = await createPayment({ amount: 130, currency: "GBP" });
    const done = await waitForPayment(payment.id, (p) => p.status === "completed");
    expect(done).toMatchObject({ status: "completed", version: 4, amount: 130, paymentReference: expect.any(String), stalled: null });
    const docs = await history(payment.id);
    expect(docs.map((d) => [d.id, d.stream, d.eventType])).toEqual(
      lifecycle.map((type, i) => [`pay:${payment.id}:${i + 1}`, { id: `pay:${payment.id}`, version: i + 1 }, type]),
    );
    expect(docs[1]!.eventData).toEqual({ PaymentReference: done.paymentReference, Timestamp: done.createdAt });
    expect(docs[2]!.eventData).toEqual({ PaymentReference: done.paymentReference, Timestamp: done.settledAt });
    expect(docs[3]!.metadata).toEqual({ correlationId: docs[0]!.metadata!.correlationId, causationId: docs[2]!.eventId });
  });

  it("notifies the merchant once, signed, with the public resource", async () => {
    const payment = await createPayment({ amount: 131, currency: "GBP", metadata: { order: "n-1" } });
    const done = await waitForPayment(payment.id, (p) => p.status === "completed");
    const notes = (await simulator.calls()).filter((c: Json) => c.route === "notify" && c.body?.id === payment.id);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.status).toBe(200); // the simulator verified the Regis-Signature
    const payload = JSON.parse(notes[0]!.body.jsonPayload);
    expect(payload).toMatchObject({ type: "payment.settled", data: { object: "payment", id: payment.id, status: "settled", amount: 131, metadata: { order: "n-1" } } });
    expect(Object.keys(payload.data).sort()).toEqual(Object.keys(done).sort());
  });

  it("reaches completed with every message delivered again, twice and in reverse order", async () => {
    const payment = await createPayment({ amount: 132, currency: "EUR" });
    let delivered = 0;
    // Every answer is kept: an expect inside the poll would be retried away by the next round.
    const retried: unknown[] = [];
    await vi.waitFor(
      async () => {
        const docs = await history(payment.id);
        if (docs.length > delivered) {
          delivered = docs.length;
          const reversed = [...docs].reverse();
          retried.push(...(await deliver([...reversed, ...reversed])).retryMessages);
        }
        expect(docs.at(-1)?.eventType).toBe("PaymentCompleted");
      },
      { timeout: 15_000, interval: 10 },
    );
    expect(retried).toEqual([]);
    const done = await waitForPayment(payment.id, terminal);
    expect(types(await history(payment.id))).toEqual(lifecycle);
    const calls = await callsFor(done);
    expect(calls.filter((c: Json) => c.route === "create" && c.outcome === "ok")).toHaveLength(1);
    expect(new Set(calls.map((c: Json) => c.idempotencyKey)).size).toBe(3);
  });

  it("is held back while an earlier append's outcome is unknown, by a copy sent for later (no attempt spent), then completes", async () => {
    const { id, stub } = await createUnrelayed(137, { settleMs: 60_000 });
    // The marker of an append whose outcome is unknown, as an append leaves it; relays work again.
    await runInDurableObject(stub, (instance: PaymentObject) => {
      const o = instance as unknown as { env: Env };
      o.env = { ...o.env, EVENTS: env.EVENTS };
    });
    await markUnknownAppend(stub, Date.now());
    const initiated = await history(id);
    const sent: { body: Json; options?: QueueSendOptions }[] = [];
    const result = await deliver(initiated, sent);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(1);
    expect(sent).toEqual([{ body: expect.objectContaining({ eventId: eventMessage(initiated[0]!).eventId, held: true, notBefore: expect.any(Number) }), options: expect.objectContaining({ delaySeconds: expect.any(Number) }) }]);
    expect(sent[0]!.options!.delaySeconds).toBeGreaterThanOrEqual(55);
    expect(sent[0]!.options!.delaySeconds).toBeLessThanOrEqual(60);
    // That copy, held again, spends an attempt (no copy of a copy): a step whose own appends keep failing with an
    // unknown outcome still exhausts its retries and stalls, instead of being held back for ever.
    const again = await deliver(initiated, sent, sent[0]!.body);
    expect(again.retryMessages).toHaveLength(1);
    expect(again.delays[0]).toBeGreaterThanOrEqual(55);
    expect(sent).toHaveLength(1);
    expect((await simulator.calls()).filter((c: Json) => c.route === "create" && c.body?.amount === 137)).toEqual([]);
    // That copy arrives once the append can no longer land.
    await markUnknownAppend(stub, Date.now() - 61_000);
    expect((await deliver(initiated)).retryMessages).toEqual([]);
    await waitForPayment(id, (p) => p.status === "completed");
    expect(types(await history(id))).toEqual(lifecycle);
  });

  it("reaches completed with one provider payment after the provider fails for a while", async () => {
    await simulator.settings({ failNext: { route: "create", count: 2, status: 500 } });
    const payment = await createPayment({ amount: 133, currency: "USD" });
    const done = await waitForPayment(payment.id, (p) => p.status === "completed");
    const creates = (await callsFor(done)).filter((c: Json) => c.route === "create");
    expect(creates.map((c: Json) => c.status)).toEqual([500, 500, 202]);
    expect(new Set(creates.map((c: Json) => c.idempotencyKey)).size).toBe(1);
    expect(Object.values((await simulator.payments()) as Json).flat().filter((p: Json) => p.amount === 133)).toHaveLength(1);
    expect(types(await history(payment.id))).toEqual(lifecycle);
  });

  it("is not failed by the provider refusing our credentials for a while (401): it completes once they work", async () => {
    await simulator.settings({ failNext: { route: "create", count: 2, status: 401 } });
    const payment = await createPayment({ amount: 142, currency: "GBP" });
    const done = await waitForPayment(payment.id, terminal);
    expect(done.status).toBe("completed");
    expect((await callsFor(done)).filter((c: Json) => c.route === "create").map((c: Json) => c.status)).toEqual([401, 401, 202]);
  });

  it("keeps a refusal's code bounded: a provider answering 130,000 characters fails the payment with its first 100, and its events are all relayed", async () => {
    const code = "x".repeat(130_000); // more than a queue message may hold (128 KB)
    await simulator.settings({ declines: [{ route: "create", amountEquals: 66.65, code, reason: "a provider gone wrong" }] });
    const payment = await createPayment({ amount: 66.65, currency: "GBP" });
    const failed = await waitForPayment(payment.id, terminal);
    expect(failed).toMatchObject({ status: "failed", failure: { step: "create", reason: code.slice(0, 100) } });
    await vi.waitFor(async () => expect((await api(`/admin/payments/${payment.id}/relay`, { key: keys.admin })).body).toMatchObject({ relayedVersion: 2, undelivered: [] }), { timeout: 10_000, interval: 50 });
  });

  it("fails when the provider declines it", async () => {
    await simulator.settings({ declines: [{ route: "create", amountEquals: 66.66, code: "card_declined", reason: "insufficient funds" }] });
    const payment = await createPayment({ amount: 66.66, currency: "GBP" });
    const failed = await waitForPayment(payment.id, terminal);
    expect(failed).toMatchObject({ status: "failed", failure: { step: "create", reason: "card_declined" }, paymentReference: null });
    expect(types(await history(payment.id))).toEqual(["PaymentInitiated", "PaymentFailed"]);
    // The merchant is told, once, signed (the simulator verified it), and nothing is appended for it.
    const notes = await notified(payment.id, "payment.failed");
    expect(notes.map((c: Json) => c.status)).toEqual([200]);
    expect(JSON.parse(notes[0]!.body.jsonPayload)).toMatchObject({ type: "payment.failed", createdAt: failed.failedAt, data: { status: "failed", failure: { step: "create", reason: "card_declined" } } });
    // Once every event's delivery is confirmed (the step done), still the one notification.
    await vi.waitFor(async () => expect((await api(`/admin/payments/${payment.id}/relay`, { key: keys.admin })).body).toMatchObject({ undelivered: [] }), { timeout: 10_000, interval: 50 });
    expect(await notified(payment.id, "payment.failed")).toHaveLength(1);
    expect(types(await history(payment.id))).toEqual(["PaymentInitiated", "PaymentFailed"]);
  });

  it("shows a failed payment's notification stalled until a re-drive delivers it, then no longer", async () => {
    await simulator.settings({ declines: [{ route: "create", amountEquals: 66.67, code: "card_declined", reason: "insufficient funds" }], failNext: { route: "notify", count: 3, status: 500 } });
    const payment = await createPayment({ amount: 66.67, currency: "GBP" });
    const stalled = await waitForPayment(payment.id, (p) => p.stalled !== null);
    expect(stalled).toMatchObject({ status: "failed", stalled: { step: "notify-outcome", attempts: 3 } });
    expect(await api(`/admin/payments/${payment.id}/redrive`, { method: "POST", key: keys.admin })).toMatchObject({ status: 202, body: { redriven: 1 } });
    expect(await waitForPayment(payment.id, (p) => p.stalled === null)).toMatchObject({ status: "failed" });
    expect(types(await history(payment.id))).toEqual(["PaymentInitiated", "PaymentFailed", "PaymentStepStalled", "PaymentStepRecovered"]);
    // Every attempt sent the same body, the last one through.
    const notes = (await simulator.calls()).filter((c: Json) => c.route === "notify" && c.body?.id === payment.id);
    expect(notes.map((c: Json) => c.status)).toEqual([500, 500, 500, 200]);
    expect(new Set(notes.map((c: Json) => c.body.jsonPayload)).size).toBe(1);
  });

  it("is marked stalled when a step exhausts its retries, and completes once re-driven", async () => {
    await simulator.settings({ failNext: { route: "settle", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 134, currency: "GBP" });
    const stalled = await waitForPayment(payment.id, (p) => p.stalled !== null);
    expect(stalled).toMatchObject({ status: "created", stalled: { step: "settle", reason: expect.any(String), attempts: 3 } });
    expect(types(await history(payment.id))).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentStepStalled"]);
    const redrive = await api(`/admin/payments/${payment.id}/redrive`, { method: "POST", key: keys.admin });
    expect(redrive).toMatchObject({ status: 202, body: { redriven: 1 } });
    const done = await waitForPayment(payment.id, (p) => p.status === "completed");
    expect(done.stalled).toBeNull();
    expect(types(await history(payment.id))).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentStepStalled", "PaymentSettled", "PaymentCompleted"]);
  });

  it("is marked stalled, not dropped, when a dead-lettered step's event is newer than what its object has read", async () => {
    const { id, stub } = await createUnrelayed(149);
    // Version 2 committed where the object did not see it (its last read was before it).
    const created = encode(`pay:${id}`, 2, { type: "PaymentCreated", data: { PaymentReference: `ref-${id}`, Timestamp: new Date().toISOString() } }, { eventId: crypto.randomUUID(), correlationId: null, causationId: null });
    expect(await store().append(`pay:${id}`, 1, [created])).toMatchObject({ ok: true });
    expect(await stub.onExhausted(eventMessage(created))).toEqual({ outcome: "done" });
    expect(types(await history(id))).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentStepStalled"]);
    expect((await api(`/api/payments/${id}`)).body).toMatchObject({ status: "created", stalled: { step: "settle" } });
  });

  it("sends the same notification on every attempt: the payment as of its settlement, dated by it", async () => {
    await simulator.settings({ failNext: { route: "notify", count: 2, status: 500 } });
    const payment = await createPayment({ amount: 134, currency: "GBP" });
    const done = await waitForPayment(payment.id, (p) => p.status === "completed");
    const bodies = (await simulator.calls()).filter((c: Json) => c.route === "notify" && c.body?.id === payment.id).map((c: Json) => c.body.jsonPayload);
    expect(bodies).toHaveLength(3);
    expect(new Set(bodies).size).toBe(1);
    expect(JSON.parse(bodies[0]!)).toMatchObject({ type: "payment.settled", createdAt: done.settledAt, data: { status: "settled", version: 3, settledAt: done.settledAt, completedAt: null } });
  });

  it("stalls only the notification when the merchant endpoint keeps failing: the payment stays settled", async () => {
    await simulator.settings({ failNext: { route: "notify", count: 3, status: 500 } });
    const payment = await createPayment({ amount: 135, currency: "GBP" });
    const stalled = await waitForPayment(payment.id, (p) => p.stalled !== null);
    expect(stalled).toMatchObject({ status: "settled", stalled: { step: "notify" } });
  });
});

describe("the watchdog", () => {
  it("re-drives a payment whose message was lost", async () => {
    // The first relay goes to a queue that loses it.
    const { id, stub } = await createUnrelayed(136);
    await behindItsBack(stub, (instance, state) => {
      const o = instance as unknown as { env: Env };
      o.env = { ...o.env, EVENTS: env.EVENTS };
      state.storage.sql.exec("UPDATE meta SET progress_at = 0");
    });
    expect((await api(`/api/payments/${id}`)).body.status).toBe("initiated");
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await waitForPayment(id, (p) => p.status === "completed");
    expect(types(await history(id))).toEqual(lifecycle);
  });

  it("re-drives it when its object has left memory too: loading the stream again is not progress", async () => {
    const { id, stub } = await createUnrelayed(140);
    await runInDurableObject(stub, (_: PaymentObject, state) => state.storage.sql.exec("UPDATE meta SET progress_at = 0"));
    await evict(stub);
    // A read loads the stream from the object's copy and Cosmos, then the alarm finds the payment idle for long.
    expect((await api(`/api/payments/${id}`)).body.status).toBe("initiated");
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await waitForPayment(id, (p) => p.status === "completed");
    expect(types(await history(id))).toEqual(lifecycle);
  });
});

describe("delivery", () => {
  it("sends a relayed event again when the consumer never confirmed it (a queue lost it)", async () => {
    const payment = await createPayment({ amount: 137, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    await vi.waitFor(async () => expect(await reported(stub)).toEqual([1, 2, 3, 4]), { timeout: 5000, interval: 20 });
    // The Completed message is lost: no confirmation, and long enough ago.
    await behindItsBack(stub, async (o, state) => {
      state.storage.sql.exec("DELETE FROM deliveries WHERE version = 4");
      setCounter(state, "relayed-at", 0);
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await vi.waitFor(async () => expect(await reported(stub)).toEqual([1, 2, 3, 4]), { timeout: 5000, interval: 20 });
    expect(types(await history(payment.id))).toEqual(lifecycle);
  });
});

describe("the payments list", () => {
  it("is not left behind when D1 fails a batch's update: the step still runs, the message is retried, and its retry lists it", async () => {
    const { id } = await createUnrelayed(142);
    const row = () => env.READ_MODEL.prepare("SELECT status, version FROM payments WHERE id = ?").bind(id).first<{ status: string; version: number }>();
    const initiated = await history(id);
    // The summary the relay puts in each message, which the list is kept from.
    const summary = { summary: paymentSummary(replay(initiated, { state: initialState(), version: 0 }).state as Payment, 1, "merchant-a") };
    const once = await whileListFails(() => deliver(initiated, undefined, summary));
    expect(types(await history(id))).toEqual(["PaymentInitiated", "PaymentCreated"]);
    expect(once.retryMessages).toHaveLength(1);
    expect(once.explicitAcks).toEqual([]);
    expect(await row()).toBeNull();

    const again = await deliver(initiated, undefined, summary);
    expect(again.retryMessages).toEqual([]);
    expect(again.explicitAcks).toHaveLength(1);
    expect(await row()).toEqual({ status: "initiated", version: 1 });
    expect(types(await history(id))).toEqual(["PaymentInitiated", "PaymentCreated"]);
    // A dead letter is not retried for the list: a retry would run its stall again.
    const dead = await whileListFails(() => deliver(initiated, undefined, summary, "payment-events-dlq"));
    expect(dead.retryMessages).toEqual([]);
    expect(dead.explicitAcks).toHaveLength(1);
  });
});

describe("a slow queue", () => {
  afterEach(async () => {
    await env.READ_MODEL.exec("DELETE FROM queue_health");
  });

  it("is measured by the consumer: the longest wait among a batch's first deliveries, from when each was due", async () => {
    const payment = await createPayment({ amount: 138, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const docs = await history(payment.id);
    const sentAgo = 7_000;
    const batch = createMessageBatch<unknown>("payment-events", [
      { id: crypto.randomUUID(), timestamp: new Date(Date.now() - sentAgo), attempts: 1, body: eventMessage(docs[3]!) },
      // A retry waited on purpose: it says nothing of the queue.
      { id: crypto.randomUUID(), timestamp: new Date(Date.now() - 10 * sentAgo), attempts: 3, body: eventMessage(docs[2]!) },
      // A copy sent to arrive later (a held-back step): counted from when it was due.
      { id: crypto.randomUUID(), timestamp: new Date(Date.now() - 10 * sentAgo), attempts: 1, body: { ...eventMessage(docs[1]!), notBefore: Date.now() - 100 } },
    ]);
    await worker.queue(batch as MessageBatch<unknown>, env);
    const row = await env.READ_MODEL.prepare("SELECT lag_ms FROM queue_health").first<{ lag_ms: number }>();
    expect(row!.lag_ms).toBeGreaterThanOrEqual(sentAgo);
    expect(row!.lag_ms).toBeLessThan(2 * sentAgo);
  });

  it("sends a lost message again on time while its payment keeps relaying others: a redelivery is due after that message's own send", async () => {
    const payment = await createPayment({ amount: 137, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    await env.READ_MODEL.prepare("DELETE FROM queue_health").run(); // no observed lag to wait for
    const stub = env.PAYMENTS.getByName(payment.id);
    // The object sends a lost message again after a second, and the next message it sends is lost: version 5, a
    // refund's request.
    await runInDurableObject(stub, (instance) => {
      const o = instance as unknown as { env: Env; svc: { config: Record<string, unknown> } };
      const queue = o.env.EVENTS;
      let sends = 0;
      o.env = { ...o.env, EVENTS: { sendBatch: (messages: MessageSendRequest[]) => (sends++ === 0 ? Promise.resolve() : queue.sendBatch(messages)) } as unknown as Queue };
      o.svc = { ...o.svc, config: { ...o.svc.config, REDELIVER_AFTER_MS: 1000 } };
    });
    const refund = () => api(`/api/payments/${payment.id}/refunds`, { body: { amount: 0.01 } });
    expect((await refund()).status).toBe(202);
    // Refunds, one after another (each relayed well within a second), until the lost request's delivery is confirmed.
    let more = 0;
    for (const deadline = Date.now() + 10_000; !(await reported(stub)).includes(5) && Date.now() < deadline; more++) expect((await refund()).status).toBe(202);
    expect(await reported(stub)).toContain(5);
    expect(more).toBeGreaterThan(0);
    await waitForPayment(payment.id, (p) => p.refunds.length === more + 1 && p.refunds.every((r) => r.status === "succeeded"));
  });

  it("sends again only the versions overdue, each dated by its own last send, also after the object restarted", async () => {
    const payment = await createPayment({ amount: 136, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    await env.READ_MODEL.prepare("DELETE FROM queue_health").run(); // no observed lag to wait for
    const stub = env.PAYMENTS.getByName(payment.id);
    await vi.waitFor(async () => expect(await reported(stub)).toEqual([1, 2, 3, 4]), { timeout: 5000, interval: 20 });
    // Version 3's message was lost, relayed two minutes ago (past REDELIVER_AFTER_MS); then the object restarted.
    await behindItsBack(stub, (_, state) => {
      state.storage.sql.exec("DELETE FROM deliveries WHERE version = 3");
      setCounter(state, "relayed-at", Date.now() - 120_000);
    });
    await evict(stub);
    // Now a refund's request (version 5) is relayed, and its message is lost too; later sends are recorded.
    const sent: number[] = [];
    await runInDurableObject(stub, (instance) => {
      const o = instance as unknown as { env: Env };
      const queue = o.env.EVENTS;
      let sends = 0;
      const record = (messages: MessageSendRequest[]) => (sent.push(...messages.map((m) => (m.body as { version: number }).version)), queue.sendBatch(messages));
      o.env = { ...o.env, EVENTS: { sendBatch: (messages: MessageSendRequest[]) => (sends++ === 0 ? Promise.resolve() : record(messages)) } as unknown as Queue };
    });
    expect((await api(`/api/payments/${payment.id}/refunds`, { body: { amount: 1 } })).status).toBe(202);
    // Version 3 is sent again at once, dated by the relay before the restart (not by the refund's, just after it),
    // and alone: version 5's send is a moment old.
    await vi.waitFor(async () => expect(await reported(stub)).toEqual([1, 2, 3, 4]), { timeout: 5000, interval: 20 });
    expect(sent).toEqual([3]);
  });

  it("is not mistaken for a lost message: redelivery waits twice the observed lag, then sends again once it is stale", async () => {
    const payment = await createPayment({ amount: 139, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const stub = env.PAYMENTS.getByName(payment.id);
    await vi.waitFor(async () => expect(await reported(stub)).toEqual([1, 2, 3, 4]), { timeout: 5000, interval: 20 });
    // The Completed message is unconfirmed, relayed two minutes ago (past REDELIVER_AFTER_MS), while the consumer
    // reports messages waiting ten minutes.
    const lagMs = 600_000;
    const relayedAt = Date.now() - 120_000;
    await env.READ_MODEL.prepare("INSERT OR REPLACE INTO queue_health VALUES (1, ?, ?)").bind(lagMs, Date.now()).run();
    const armed = () =>
      behindItsBack(stub, async (o, state) => {
        state.storage.sql.exec("DELETE FROM deliveries WHERE version = 4");
        setCounter(state, "relayed-at", relayedAt);
        await state.storage.setAlarm(Date.now());
      });
    await armed();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = await runInDurableObject(stub, async (_: PaymentObject, state) => ({ relayedAt: counter(state, "relayed-at"), alarm: await state.storage.getAlarm() }));
    expect(after.relayedAt).toBe(relayedAt); // nothing was sent again
    expect(after.alarm).toBe(relayedAt + 2 * lagMs); // the next look is when the lag says it would have arrived
    // An observation older than QUEUE_LAG_TTL_MS says nothing of now: the event is sent again and confirmed.
    await env.READ_MODEL.prepare("UPDATE queue_health SET observed_at = ?").bind(Date.now() - loadConfig(env).QUEUE_LAG_TTL_MS - 1_000).run();
    await armed();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await vi.waitFor(async () => expect(await reported(stub)).toEqual([1, 2, 3, 4]), { timeout: 5000, interval: 20 });
    expect(types(await history(payment.id))).toEqual(lifecycle);
  });
});

describe("a crash of the payment's object", () => {
  async function armed(crash: ArmedCrash, amount: number) {
    const key = crypto.randomUUID();
    const id = uuidFrom("payment", "merchant-a", key);
    await runInDurableObject(env.PAYMENTS.getByName(id), (instance: PaymentObject) => instance.crashPoints.add(crash));
    const res = await api("/api/payments", { body: { amount, currency: "GBP" }, headers: { "idempotency-key": key } });
    return { id, key, res };
  }

  it.each([["after-append@1"], ["after-send@1"], ["after-append@2"], ["after-send@2"], ["after-append@3"], ["after-append@4"]] as const)(
    "at %s still completes the payment, with nothing duplicated and every delivery confirmed",
    async (crash) => {
      const amount = 140 + Math.floor(Math.random() * 1000) / 100;
      const { id, res } = await armed(crash, amount);
      // A create answers once Cosmos holds its event: a crash after that point (the relay follows the reply) is not the client's.
      expect(res.status).toBe(crash === "after-append@1" ? 500 : 201);
      const done = await waitForPayment(id, (p) => p.status === "completed");
      expect(types(await history(id))).toEqual(lifecycle);
      const creates = (await callsFor(done)).filter((c: Json) => c.route === "create" && c.outcome === "ok");
      expect(creates).toHaveLength(1);
      // A step's delivery is confirmed after the step: a crash inside it leaves the delivery to the queue's retry. A
      // confirmation written behind and lost with the crash is restored by redelivery, due REDELIVER_AFTER_MS after the
      // relay: made due now.
      const stub = env.PAYMENTS.getByName(id);
      await vi.waitFor(
        async () => {
          await behindItsBack(stub, (_, state) => setCounter(state, "relayed-at", 0));
          await runDurableObjectAlarm(stub);
          expect(await reported(stub)).toEqual([1, 2, 3, 4]);
        },
        { timeout: 10_000, interval: 100 },
      );
    },
  );

  it("before a re-driven stalled step's append still finds the relay's marker: nothing else would deliver its trigger again", async () => {
    await simulator.settings({ failNext: { route: "settle", count: 3, status: 503 } });
    const payment = await createPayment({ amount: 147, currency: "GBP" });
    await waitForPayment(payment.id, (p) => p.stalled !== null);
    const [, created] = await store().load(`pay:${payment.id}`);
    // The operator's re-drive delivers the trigger again; the object is aborted right before the step's append (v4).
    await runInDurableObject(env.PAYMENTS.getByName(payment.id), (o: PaymentObject) => o.crashPoints.add("before-append@4"));
    expect((await deliver([created!])).retryMessages).toHaveLength(1);
    const pending = await runInDurableObject(env.PAYMENTS.getByName(payment.id), (_: PaymentObject, state) =>
      state.storage.sql.exec<{ p: number | null }>("SELECT pending_since AS p FROM meta").one().p,
    );
    expect(pending).not.toBeNull(); // so its alarm reads what Cosmos committed, however long Cosmos is away
  });

  it("after a cancel's reply, before its bookkeeping: the key stays claimed, so a retry with another reason is refused", async () => {
    // The lifecycle waits in a losing queue, so the payment stays initiated until the cancel.
    const { id, stub } = await createUnrelayed(146);
    await runInDurableObject(stub, (instance: PaymentObject) => instance.crashPoints.add("after-send@2"));
    const key = crypto.randomUUID();
    const cancel = (reason: string) => api(`/api/payments/${id}/cancel`, { body: { reason }, headers: { "idempotency-key": key } });
    expect(await cancel("customer asked")).toMatchObject({ status: 200, body: { status: "cancelled" } });
    // The crash lost the stored reply (and broke that stub: a new one reaches the next instance); the alarm relays the
    // cancel from Cosmos, and the key's claim, written before the append, is still there. (To the decider, cancelling
    // a cancelled payment is a repeat, whatever the reason.)
    await vi.waitFor(async () => expect(await env.PAYMENTS.getByName(id).relayStatus(id)).toMatchObject({ ok: true, body: { version: 2, relayedVersion: 2 } }), { timeout: 10_000, interval: 50 });
    expect(await cancel("another reason")).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });
    expect(await cancel("customer asked")).toMatchObject({ status: 200, body: { status: "cancelled", version: 2 } });
    expect(types(await history(id))).toEqual(["PaymentInitiated", "PaymentCancelled"]);
  });

  it("before the append commits publishes nothing; a retry with the key then creates the payment once", async () => {
    const { id, key, res } = await armed("before-append@1", 150);
    expect(res.status).toBe(500);
    // The alarm checks Cosmos until the append can no longer commit, finds nothing, and relays nothing.
    await vi.waitFor(
      async () => {
        const pending = await runInDurableObject(env.PAYMENTS.getByName(id), (_: PaymentObject, state) => state.storage.sql.exec("SELECT pending_since, relayed_version FROM meta").one());
        expect(pending).toEqual({ pending_since: null, relayed_version: 0 });
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(await history(id)).toEqual([]);
    expect((await simulator.calls()).filter((c: Json) => c.body?.amount === 150)).toEqual([]);
    const retried = await api("/api/payments", { body: { amount: 150, currency: "GBP" }, headers: { "idempotency-key": key } });
    expect(retried.status).toBe(201);
    await waitForPayment(id, (p) => p.status === "completed");
    expect(types(await history(id))).toEqual(lifecycle);
  });
});

describe("200 payments at once", () => {
  it("all reach a terminal state with contiguous versions", async () => {
    const payments = await Promise.all(Array.from({ length: 200 }, (_, i) => createPayment({ amount: 1000 + i, currency: "GBP" })));
    await waitForAll(payments.map((p) => p.id), terminal);
    for (const p of payments) {
      const docs = await history(p.id);
      expect(docs.map((d) => d.stream.version)).toEqual(docs.map((_, i) => i + 1));
      expect(types(docs)).toEqual(lifecycle);
    }
  }, 120_000);
});
