// The reliability scenario, shared by the e2e fault suite (200 payments) and `npm run soak` (thousands): seeded
// payments with cancels and refunds while faults are injected everywhere at once, then invariant checks over the
// recorded history of every payment. The seed is printed; the same seed replays the same scenario.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { CosmosClient } from "@azure/cosmos";
import { CosmosEventStore } from "../src/cosmos/cosmosEventStore.ts";
import type { EventDocument } from "../src/core/eventStore.ts";
import { EMULATOR_KEY } from "./cosmos/server.ts";
import { pool, reliably, type Client } from "./load.ts";
import { seededRandom } from "./random.ts";

export type ChaosTarget = {
  apiUrl: string;
  cosmosUrl: string;
  providerUrl: string;
  merchantId: string;
  merchantKey: string;
  adminKey: string;
  database: string;
  container: string;
  /** Every log file the Worker wrote during the run (one per start of wrangler dev). */
  logFiles(): string[];
  /** Restarts the Worker runtime (wrangler dev) on the same state, with these vars changed. */
  restartWorker(vars: Record<string, string>): Promise<void>;
};

/** Worker vars for a run with faults: aborts at crash points and redelivered messages, seeded. */
export const chaosVars = (seed: number) => ({
  FAULT_SEED: String(seed),
  FAULT_ABORT_RATE: "0.03",
  FAULT_REDELIVER_RATE: "0.05",
  FAULT_REDELIVER_MAX_DELAY_S: "2",
  LOG_LEVEL: "info",
  RETRY_BASE_SECONDS: "0",
  RETRY_MAX_SECONDS: "1",
  PROVIDER_TIMEOUT_MS: "1500",
  COSMOS_REQUEST_TIMEOUT_MS: "3000",
  RELAY_CHECK_MS: "500",
  RELAY_SETTLE_MS: "5000",
  WATCHDOG_MS: "5000",
  REDELIVER_AFTER_MS: "3000",
});
export const calmVars = { FAULT_ABORT_RATE: "0", FAULT_REDELIVER_RATE: "0" };

const declinedAmount = 66.6; // the provider declines creates of this amount
const declinedRefund = 0.13; // and refunds of this amount

type Recorded = {
  payments: Map<string, { amount: number }>;
  refunds: Map<string, { paymentId: string; amount: number }>;
  cancelled: Set<string>;
  rejected: number;
};

export type ChaosReport = { seed: number; payments: number; faults: Record<string, number>; violations: string[]; stalledRedriven: number; seconds: number };

export async function runChaos(target: ChaosTarget, opts: { seed: number; payments: number; concurrency?: number; deadlineMs?: number; log?: (line: string) => void }): Promise<ChaosReport> {
  const say = opts.log ?? (() => {});
  const started = Date.now();
  const rnd = seededRandom(opts.seed);
  const client: Client = { apiUrl: target.apiUrl, key: target.merchantKey };
  const admin: Client = { apiUrl: target.apiUrl, key: target.adminKey };
  const recorded: Recorded = { payments: new Map(), refunds: new Map(), cancelled: new Set(), rejected: 0 };
  const json = (url: string, method: string, body?: unknown) =>
    fetch(url, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }) });

  // Faults outside the Worker: Cosmos throttling, failures and slowness; provider errors, timeouts and declines.
  await json(`${target.cosmosUrl}/_emulator/faults`, "DELETE");
  for (const rule of [
    { kind: "sproc", mode: "429", fraction: 0.05, retryAfterMs: 20, seed: opts.seed },
    { kind: "query", mode: "429", fraction: 0.05, retryAfterMs: 20, seed: opts.seed + 1 },
    { kind: "sproc", mode: "503", fraction: 0.01, seed: opts.seed + 2 },
    { kind: "any", mode: "delay", fraction: 0.03, delayMs: 200, seed: opts.seed + 3 },
  ])
    await json(`${target.cosmosUrl}/_emulator/faults`, "POST", rule);
  await json(`${target.providerUrl}/_sim/reset`, "POST");
  await json(`${target.providerUrl}/_sim/settings`, "POST", {
    seed: opts.seed,
    errorRate: 0.04,
    timeoutRate: 0.005,
    // the first settle is held whatever the seed, so a short run cannot miss the timeout fault
    failNext: { route: "settle", count: 1, status: "timeout" },
    declines: [
      { route: "create", amountEquals: declinedAmount, code: "card_declined", reason: "declined by the simulator" },
      { route: "refund", amountEquals: declinedRefund, code: "refund_declined", reason: "declined by the simulator" },
    ],
  });

  // The scenario: payments (some declined), cancels racing the lifecycle, partial refunds (some over the amount).
  const plans = Array.from({ length: opts.payments }, (_, i) => {
    const amount = rnd() < 0.05 ? declinedAmount : Math.round(1000 + rnd() * 9000) / 100;
    const cancel = rnd() < 0.15;
    const refunds = !cancel && rnd() < 0.35 ? Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => (rnd() < 0.1 ? declinedRefund : Math.round(rnd() * amount * 60) / 100)) : [];
    return { i, amount, cancel, refunds, key: `chaos-${opts.seed}-${i}` };
  });
  say(`chaos seed ${opts.seed}: ${plans.length} payments, ${plans.filter((p) => p.cancel).length} cancels, ${plans.reduce((n, p) => n + p.refunds.length, 0)} refunds`);

  let restarted = 0;
  const restartAt = Math.floor(plans.length / 2);
  await pool(plans.length, opts.concurrency ?? 16, async (n) => {
    const plan = plans[n]!;
    if (n === restartAt && restarted === 0) {
      restarted++;
      say("restarting the Worker runtime mid-run");
      await target.restartWorker({});
    }
    const created = await reliably(client, "/api/payments", { amount: plan.amount, currency: "GBP" }, plan.key);
    if (created.status !== 201) throw new Error(`create ${plan.key} answered ${created.status}: ${JSON.stringify(created.body)}`);
    const id = created.body!.id as string;
    recorded.payments.set(id, { amount: plan.amount });
    if (plan.cancel) {
      const res = await reliably(client, `/api/payments/${id}/cancel`, { reason: "chaos" }, `${plan.key}-cancel`);
      if (res.status === 200) recorded.cancelled.add(id);
      else recorded.rejected++;
    }
    if (plan.refunds.length === 0) return;
    for (let waited = 0; ; waited++) {
      const p = await reliably(client, `/api/payments/${id}`);
      if (["settled", "completed", "failed", "cancelled"].includes(p.body?.status)) break;
      if (waited > 600) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const [r, amount] of plan.refunds.entries()) {
      const key = `${plan.key}-refund-${r}`;
      const res = await reliably(client, `/api/payments/${id}/refunds`, { amount }, key);
      if (res.status === 202) recorded.refunds.set(res.body!.id as string, { paymentId: id, amount });
      else recorded.rejected++;
    }
  });

  // The faults stop: clear them, restart the Worker without its own, then let everything settle.
  const faultsFired = (await (await json(`${target.cosmosUrl}/_emulator/faults`, "GET")).json()) as { rules: { kind: string; mode: string; fired: number }[] };
  await json(`${target.cosmosUrl}/_emulator/faults`, "DELETE");
  const simulatorCalls = (await (await json(`${target.providerUrl}/_sim/calls`, "GET")).json()) as Record<string, any>[];
  await json(`${target.providerUrl}/_sim/settings`, "POST", { errorRate: 0, timeoutRate: 0, failNext: null });
  await target.restartWorker(calmVars);
  restarted++;

  const ids = [...recorded.payments.keys()];
  const deadline = Date.now() + (opts.deadlineMs ?? 180_000);
  const settled = (p: Record<string, any>) =>
    ["completed", "failed", "cancelled"].includes(p.status) && p.stalled === null && p.refunds.every((r: Record<string, any>) => r.status !== "pending" && r.stalled === null);
  const waitSettled = async (redrive: boolean) => {
    const stuck: string[] = [];
    for (const id of ids) {
      for (;;) {
        const p = (await reliably(client, `/api/payments/${id}`)).body;
        if (p && settled(p)) break;
        const stalled = p && (p.stalled !== null || p.refunds.some((r: Record<string, any>) => r.stalled !== null));
        if (stalled && redrive) {
          stuck.push(id);
          break;
        }
        if (Date.now() > deadline) {
          stuck.push(id);
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return stuck;
  };
  const stalled = await waitSettled(true);
  for (const id of stalled) await fetch(`${admin.apiUrl}/admin/payments/${id}/redrive`, { method: "POST", headers: { authorization: `Bearer ${admin.key}` } });
  const unfinished = await waitSettled(false);

  // ---- invariants, over the recorded history of every payment ----
  const violations: string[] = [];
  const cosmos = new CosmosClient({ endpoint: target.cosmosUrl, key: EMULATOR_KEY, connectionPolicy: { enableEndpointDiscovery: false } });
  const store = new CosmosEventStore(cosmos.database(target.database).container(target.container));
  const histories = new Map<string, EventDocument[]>();
  await pool(ids.length, 8, async (i) => histories.set(ids[i]!, await store.load(`pay:${ids[i]}`)));
  cosmos.dispose();

  for (const id of unfinished) violations.push(`${id}: not terminal by the deadline`);
  // Each payment's object records every delivery the consumer reports: none may be missing.
  const relay = new Map<string, { version: number; relayedVersion: number; undelivered: number[] }>();
  await pool(ids.length, 8, async (i) => relay.set(ids[i]!, (await reliably(admin, `/admin/payments/${ids[i]}/relay`)).body as never));
  const providerPayments = new Map<string, number>();
  const providerRefunds = new Map<string, number>();
  for (const call of simulatorCalls) {
    if (call.route === "create" && call.outcome === "ok") providerPayments.set(call.idempotencyKey, (providerPayments.get(call.idempotencyKey) ?? 0) + 1);
    if (call.route === "refund" && call.outcome === "ok") providerRefunds.set(call.idempotencyKey, (providerRefunds.get(call.idempotencyKey) ?? 0) + 1);
  }

  // The provider's final state, to agree with each payment's history (below).
  const atProvider = new Map(
    ((await (await json(`${target.providerUrl}/_sim/payments`, "GET")).json()) as { idempotencyKey: string; status: string; refundedAmount: number; refunds: unknown[] }[]).map((p) => [p.idempotencyKey, p]),
  );

  for (const [id, docs] of histories) {
    const types = docs.map((d) => d.eventType);
    if (docs.some((d, i) => d.stream.version !== i + 1)) violations.push(`${id}: versions not contiguous from 1`);
    for (const t of ["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted", "PaymentFailed", "PaymentCancelled"])
      if (types.filter((x) => x === t).length > 1) violations.push(`${id}: ${t} appears twice`);
    const initiated = docs.find((d) => d.eventType === "PaymentInitiated");
    const amount = Math.round((initiated?.eventData.Amount as number) * 100);
    if (initiated && amount !== Math.round(recorded.payments.get(id)!.amount * 100)) violations.push(`${id}: amount differs from the accepted request`);
    const refundIds = new Set(docs.filter((d) => d.eventType.startsWith("Refund")).map((d) => d.eventData.RefundId as string));
    let committedMinor = 0;
    for (const rid of refundIds) {
      const of = (t: string) => docs.filter((d) => d.eventType === t && d.eventData.RefundId === rid);
      if (of("RefundRequested").length !== 1 || of("RefundSucceeded").length + of("RefundFailed").length > 1)
        violations.push(`${id}: refund ${rid} recorded more than once`);
      if (of("RefundFailed").length === 0) committedMinor += Math.round((of("RefundRequested")[0]?.eventData.Amount as number) * 100);
      const requested = of("RefundRequested")[0];
      if (requested && (providerRefunds.get(requested.eventId!) ?? 0) > 1) violations.push(`${id}: refund ${rid} made twice at the provider`);
    }
    if (committedMinor > amount) violations.push(`${id}: refunds exceed the amount`);
    if (initiated && (providerPayments.get(initiated.eventId!) ?? 0) > 1) violations.push(`${id}: two provider payments`);
    const r = relay.get(id);
    if (!r || r.version !== docs.length || r.relayedVersion !== docs.length || r.undelivered.length > 0)
      violations.push(`${id}: not every committed event reached the consumer (${JSON.stringify(r)}, ${docs.length} stored)`);
    if (recorded.cancelled.has(id) && !types.includes("PaymentCancelled")) violations.push(`${id}: cancelled with 200 but not cancelled`);
    // What was settled, cancelled or declined at the provider, and every refund made there recorded here as succeeded
    // (none made twice, none missing): no money moved unrecorded.
    const there = atProvider.get(initiated?.eventId ?? "");
    const expected = types.includes("PaymentCompleted") ? ["settled"] : types.includes("PaymentCancelled") ? [undefined, "cancelled"] : types.includes("PaymentFailed") ? [undefined, "declined"] : null;
    if (expected && !expected.includes(there?.status)) violations.push(`${id}: ${types.at(-1)} here, ${there?.status ?? "no payment"} at the provider`);
    const succeeded = docs.filter((d) => d.eventType === "RefundSucceeded").map((d) => d.eventData.RefundId);
    const refundedMinor = docs.filter((d) => d.eventType === "RefundRequested" && succeeded.includes(d.eventData.RefundId)).reduce((n, d) => n + Math.round((d.eventData.Amount as number) * 100), 0);
    if ((there?.refunds.length ?? 0) !== succeeded.length || Math.round((there?.refundedAmount ?? 0) * 100) !== refundedMinor)
      violations.push(`${id}: ${succeeded.length} refunds (${refundedMinor / 100}) succeeded here, ${there?.refunds.length ?? 0} (${there?.refundedAmount ?? 0}) at the provider`);
  }
  for (const [rid, r] of recorded.refunds)
    if (!histories.get(r.paymentId)?.some((d) => d.eventType === "RefundRequested" && d.eventData.RefundId === rid && Math.round((d.eventData.Amount as number) * 100) === Math.round(r.amount * 100)))
      violations.push(`${r.paymentId}: refund ${rid} answered 202 but is not in the history`);

  // Each kind of fault must have fired, or the run proved nothing.
  // The Worker's logs, read line by line: a soak's run out-grows a single string.
  const logged = { abort: 0, redeliver: 0, ignored: 0 };
  for (const file of target.logFiles())
    for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      if (line.includes('"msg":"fault injected","kind":"abort"')) logged.abort++;
      else if (line.includes('"msg":"fault injected","kind":"redeliver"')) logged.redeliver++;
      else if (line.includes('"msg":"message ignored"')) logged.ignored++;
    }
  const firedBy = (kind: string, mode: string) => faultsFired.rules.filter((r) => r.kind === kind && r.mode === mode).reduce((n, r) => n + r.fired, 0);
  const faults = {
    cosmos429: firedBy("sproc", "429") + firedBy("query", "429"),
    cosmos503: firedBy("sproc", "503"),
    cosmosSlow: firedBy("any", "delay"),
    provider5xx: simulatorCalls.filter((c) => c.outcome === "error").length,
    providerTimeouts: simulatorCalls.filter((c) => c.outcome === "timeout").length,
    providerDeclines: simulatorCalls.filter((c) => c.outcome === "declined").length,
    objectAborts: logged.abort,
    redeliveries: logged.redeliver,
    duplicateDeliveriesIgnored: logged.ignored,
    workerRestarts: restarted,
  };
  for (const [kind, n] of Object.entries(faults)) if (n === 0) violations.push(`fault "${kind}" never fired`);
  say(`faults fired: ${JSON.stringify(faults)}`);
  return { seed: opts.seed, payments: ids.length, faults, violations, stalledRedriven: stalled.length, seconds: Math.round((Date.now() - started) / 1000) };
}
