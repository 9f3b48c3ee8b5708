// Helpers for tests on the Workers runtime: calls into the Worker, direct Cosmos access, polling with a deadline.
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect, inject, vi } from "vitest";
import { uuidFrom } from "../src/core/ids.ts";
import { encode } from "../src/cosmos/codec.ts";
import { CosmosEventStore } from "../src/cosmos/cosmosEventStore.ts";
import type { PaymentObject } from "../src/durable/paymentObject.ts";
import type { PaymentEvent } from "../src/payment/events.ts";
import type { PaymentResource } from "../src/payment/resource.ts";
import { keys } from "./setup/constants.ts";

export type Json = Record<string, any>;

export async function api(path: string, init: { method?: string; body?: unknown; key?: string | null; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...init.headers };
  const key = init.key === undefined ? keys.merchantA : init.key;
  if (key) headers.authorization = `Bearer ${key}`;
  let body: string | Uint8Array | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === "string" || init.body instanceof Uint8Array ? init.body : JSON.stringify(init.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await exports.default.fetch(`http://pay.test${path}`, { method: init.method ?? (body ? "POST" : "GET"), headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as Json, text };
}

export async function createPayment(body: Json = { amount: 86.1, currency: "GBP" }, opts: { key?: string; idempotencyKey?: string } = {}) {
  const res = await api("/api/payments", { body, key: opts.key ?? keys.merchantA, headers: opts.idempotencyKey ? { "idempotency-key": opts.idempotencyKey } : {} });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${res.text}`);
  return res.body as PaymentResource;
}

/** Polls the payment until `until` holds (deadline 15 s by default). */
export async function waitForPayment(id: string, until: (p: PaymentResource) => boolean, opts: { key?: string; timeout?: number; interval?: number } = {}) {
  return vi.waitFor(
    async () => {
      const res = await api(`/api/payments/${id}`, { key: opts.key ?? keys.merchantA });
      if (res.status !== 200 || !until(res.body as PaymentResource)) throw new Error(`payment ${id}: ${res.status} ${res.body?.status}`);
      return res.body as PaymentResource;
    },
    { timeout: opts.timeout ?? 15_000, interval: opts.interval ?? 20 },
  );
}

/**
 * Waits for many payments one after another: polling them all at once would take the single-threaded runtime
 * away from the work being waited for.
 */
export async function waitForAll(ids: string[], until: (p: PaymentResource) => boolean, timeout = 90_000) {
  const deadline = Date.now() + timeout;
  const results: PaymentResource[] = [];
  for (const id of ids) results.push(await waitForPayment(id, until, { timeout: Math.max(1, deadline - Date.now()), interval: 100 }));
  return results;
}

export const store = () =>
  CosmosEventStore.connect({
    endpoint: env.COSMOS_ENDPOINT,
    key: env.COSMOS_KEY,
    database: env.COSMOS_DATABASE,
    container: env.COSMOS_CONTAINER,
    requestTimeoutMs: 5000,
    throttleRetries: 9,
    throttleMaxWaitSeconds: 5,
  });

/** Writes a completed GBP payment of merchant-a, then `more` events, straight into Cosmos as another writer would; answers its id. */
export async function writtenElsewhere(amount: number, more: PaymentEvent[] = []) {
  const id = crypto.randomUUID();
  const s = `pay:${id}`;
  const at = new Date().toISOString();
  const events: PaymentEvent[] = [
    { type: "PaymentInitiated", data: { PaymentId: id, Amount: amount, Currency: "GBP", MerchantId: "merchant-a", Timestamp: at } },
    { type: "PaymentCreated", data: { PaymentReference: `ref-${id}`, Timestamp: at } },
    { type: "PaymentSettled", data: { PaymentReference: `ref-${id}`, Timestamp: at } },
    { type: "PaymentCompleted", data: { Timestamp: at } },
    ...more,
  ];
  const docs = events.map((e, i) => encode(s, i + 1, e, { eventId: crypto.randomUUID(), correlationId: null, causationId: null }));
  for (let v = 0; v < docs.length; v += 100) {
    const appended = await store().append(s, v, docs.slice(v, v + 100));
    if (!appended.ok) throw new Error(`stream ${s} already at version ${appended.currentVersion}`);
  }
  return id;
}

const cosmos = () => inject("cosmosEndpoint");
const provider = () => inject("providerUrl");

/** An object's counter (recovery rounds, last relay time: its `counters` table), read or written behind its back. */
export const counter = (state: DurableObjectState, key: string) =>
  state.storage.sql.exec<{ value: number }>("SELECT value FROM counters WHERE key = ?", key).toArray()[0]?.value;
export const setCounter = (state: DurableObjectState, key: string, value: number) =>
  void state.storage.sql.exec("INSERT OR REPLACE INTO counters VALUES (?, ?)", key, value);

/**
 * After a test writes storage behind a warm object's back: the object keeps what it read of it in memory (the meta
 * row, counters, confirmed deliveries and the ids of unconfirmed ones, its alarm's time), so it must read them again;
 * what it remembers of its own sends is forgotten too, so that a test's `relayed-at` is the time of every send.
 */
function forgetCached(instance: unknown) {
  const o = instance as { metaRow: unknown; deliveredRows: unknown; counterRows: unknown; unconfirmedIds: Map<number, string>; sentAt: Map<number, number>; alarmAt: unknown };
  o.metaRow = undefined;
  o.alarmAt = undefined;
  o.deliveredRows = null;
  o.counterRows = null;
  o.unconfirmedIds.clear();
  o.sentAt.clear(); // when each version was sent: the stored `relayed-at` stands for all, as after a restart
}

/**
 * Changes a payment object's storage behind its back, as another writer would: the bookkeeping it writes behind is
 * written first (it would land over the test's writes otherwise), and afterwards the object forgets what it had read.
 */
export function behindItsBack<T>(stub: DurableObjectStub, change: (instance: PaymentObject, state: DurableObjectState) => T | Promise<T>) {
  return runInDurableObject(stub, async (instance: PaymentObject, state) => {
    (instance as unknown as { flushBehind(): void }).flushBehind();
    const result = await change(instance, state);
    forgetCached(instance);
    return result;
  });
}

/** Runs `run` while the payments list's database fails for real: its table is away (renamed), then put back. */
export async function whileListFails<T>(run: () => Promise<T>): Promise<T> {
  await env.READ_MODEL.exec("ALTER TABLE payments RENAME TO payments_away");
  try {
    return await run();
  } finally {
    await env.READ_MODEL.exec("ALTER TABLE payments_away RENAME TO payments");
  }
}

/** Makes an object's instance relay into a queue that loses every message (that instance only). */
function loseRelays(instance: unknown) {
  const o = instance as { env: Env };
  o.env = { ...o.env, EVENTS: { sendBatch: async () => {} } as unknown as Queue };
}

/** Leaves the marker of an append whose outcome is unknown in a payment's object, as a failed append leaves it, dated `since`. */
export function markUnknownAppend(stub: DurableObjectStub, since: number) {
  return behindItsBack(stub, (_, state) => void state.storage.sql.exec("UPDATE meta SET pending_since = ?", since));
}

/** Evicts a payment's object even while its lifecycle is in flight: its warm hold (WARM_HOLD_MS) is let go first, as it would be in time. */
export async function evict(stub: DurableObjectStub) {
  await runInDurableObject(stub, (instance) => clearTimeout((instance as unknown as { warmHold: ReturnType<typeof setTimeout> }).warmHold));
  await evictDurableObject(stub);
}

/**
 * Creates a payment over HTTP (merchant A) whose object relays into a losing queue, so that its lifecycle does not
 * start: its first message "waits in the queue". `quietAlarm` also keeps the object's own recovery alarm out of
 * Cosmos; `settleMs` sets its RELAY_SETTLE_MS (1 s in tests), for tests that must not race that window.
 */
export async function createUnrelayed(amount: number, opts: { quietAlarm?: boolean; settleMs?: number } = {}) {
  const key = crypto.randomUUID();
  const id = uuidFrom("payment", "merchant-a", key);
  const stub = env.PAYMENTS.getByName(id);
  await runInDurableObject(stub, (instance) => {
    loseRelays(instance);
    const o = instance as unknown as { svc: { config: { RELAY_CHECK_MS: number; RELAY_SETTLE_MS: number } } };
    const config = { ...o.svc.config };
    if (opts.quietAlarm) config.RELAY_CHECK_MS = 600_000;
    if (opts.settleMs !== undefined) config.RELAY_SETTLE_MS = opts.settleMs;
    o.svc = { ...o.svc, config };
  });
  const res = await api("/api/payments", { body: { amount, currency: "GBP" }, headers: { "idempotency-key": key } });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${res.text}`);
  await settled(stub, id);
  return { id, stub };
}

/**
 * Waits until a payment's object has done what its last command left for after the reply (the relay and its
 * bookkeeping): a serialised call queues behind that work. For tests that change the object's state right after.
 */
export const settled = (stub: DurableObjectStub<PaymentObject>, id: string) => stub.relayStatus(id);

/** Waits until every event up to `version` is relayed and its delivery confirmed: no step of the payment is on its way. */
export const allDelivered = (stub: DurableObjectStub<PaymentObject>, id: string, version: number) =>
  vi.waitFor(async () => expect(await stub.relayStatus(id)).toMatchObject({ body: { relayedVersion: version, undelivered: [] } }), { timeout: 10_000, interval: 50 });

export const emulator = {
  /** Requests by kind since the last reset; with a payment's id, only those of its stream (its partition key). */
  counters: async (paymentId?: string) =>
    (await (await fetch(`${cosmos()}/_emulator/counters${paymentId === undefined ? "" : `?partition=pay:${paymentId}`}`)).json()) as Record<string, number>,
  resetCounters: () => fetch(`${cosmos()}/_emulator/counters/reset`, { method: "POST" }),
  /**
   * Waits until no request reaches the emulator for 300 ms (up to 10 s), longer than the Worker's relay check in tests
   * (RELAY_CHECK_MS, 200 ms): earlier tests' lifecycles and alarms are done.
   */
  async quiet() {
    const deadline = Date.now() + 10_000;
    for (let before = JSON.stringify(await emulator.counters()); Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 300));
      const now = JSON.stringify(await emulator.counters());
      if (now === before) return;
      before = now;
    }
    throw new Error("the emulator kept receiving requests for 10 s: earlier tests' work is not done");
  },
  fault: (rule: Json) => fetch(`${cosmos()}/_emulator/faults`, { method: "POST", body: JSON.stringify(rule) }),
  clearFaults: () => fetch(`${cosmos()}/_emulator/faults`, { method: "DELETE" }),
};

/**
 * Waits until the merchant got a notification of `type` about the payment (answered 200: the simulator verified its
 * signature), and answers every notification call about it.
 */
export function notified(paymentId: string, type: string) {
  return vi.waitFor(
    async () => {
      const calls = (await simulator.calls()).filter((c: Json) => c.route === "notify" && c.body?.id === paymentId);
      if (!calls.some((c: Json) => c.status === 200 && JSON.parse(c.body.jsonPayload).type === type)) throw new Error(`no ${type} notification about ${paymentId} yet`);
      return calls;
    },
    { timeout: 10_000, interval: 50 },
  );
}

const atProvider = (reference: string, action: "cancel" | "settle") =>
  fetch(`${provider()}/psp/api/payments/${encodeURIComponent(reference)}/${action}`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": crypto.randomUUID() }, body: "{}" });

export const simulator = {
  calls: async () => (await (await fetch(`${provider()}/_sim/calls`)).json()) as Json[],
  payments: async () => (await (await fetch(`${provider()}/_sim/payments`)).json()) as Json,
  settings: (s: Json) => fetch(`${provider()}/_sim/settings`, { method: "POST", body: JSON.stringify(s) }),
  reset: () => fetch(`${provider()}/_sim/reset`, { method: "POST" }),
  /** Cancels a payment at the provider directly, as a cancel whose recording then failed did. */
  cancel: (reference: string) => atProvider(reference, "cancel"),
  /** Settles a payment at the provider directly, as a settle call whose outcome was never recorded did. */
  settle: (reference: string) => atProvider(reference, "settle"),
};
