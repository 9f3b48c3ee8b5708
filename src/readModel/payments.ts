// The payments list: a read model in D1, kept from the relayed events and rebuildable from Cosmos's change feed.
// Rows only move forward (an upsert wins only with a higher version), so redelivered, late or reordered
// messages cannot double-count or roll a payment back: each event's effect is applied at most once.
import { readThrough, type EventStore } from "../core/eventStore.ts";
import { replay } from "../cosmos/codec.ts";
import { paymentSummary, type PaymentSummary } from "../payment/resource.ts";
import type { Status } from "../payment/state.ts";

export type ListQuery = { merchantId: string; status?: Status; currency?: string; createdFrom?: string; createdTo?: string; limit: number; cursor?: string };

type Row = {
  id: string;
  merchant_id: string;
  status: Status;
  amount: number;
  currency: string;
  initiated_at: string;
  initiated_ms: number;
  updated_at: string;
  version: number;
  stalled: number;
  refunded_amount: number;
  written_at: number;
};

/** Records the newest summary of each payment among many, with any other statements, in one round trip. */
export async function projectAll(db: D1Database, summaries: PaymentSummary[], also: D1PreparedStatement[] = []) {
  const newest = new Map<string, PaymentSummary>();
  for (const s of summaries) if ((newest.get(s.id)?.version ?? 0) < s.version) newest.set(s.id, s);
  const statements = [...[...newest.values()].map((s) => projection(db, s)), ...also];
  if (statements.length > 0) await db.batch(statements);
}

/** The database's own clock (ms): every row's `written_at` and a rebuild's start are read from the one clock. */
const dbNow = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/**
 * Records the payment as of `summary.version`, unless the row already holds that version or a newer one. A rebuild
 * begun at `rebuiltSince` also replaces a row nobody wrote since then, whatever its version: Cosmos is the truth, and
 * may hold less than the list (its container restored).
 */
function projection(db: D1Database, s: PaymentSummary, rebuiltSince = 0) {
  return db
    .prepare(
      `INSERT INTO payments (id, merchant_id, status, amount, currency, initiated_at, initiated_ms, updated_at, version, stalled, refunded_amount, written_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ${dbNow})
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, version = excluded.version,
         stalled = excluded.stalled, refunded_amount = excluded.refunded_amount, merchant_id = excluded.merchant_id,
         amount = excluded.amount, currency = excluded.currency, initiated_at = excluded.initiated_at, initiated_ms = excluded.initiated_ms,
         written_at = excluded.written_at
       WHERE excluded.version > payments.version OR payments.written_at < ?12`,
    )
    .bind(s.id, s.merchantId, s.status, s.amount, s.currency, s.initiatedAt, Date.parse(s.initiatedAt), s.updatedAt, s.version, s.stalled ? 1 : 0, s.refundedAmount, rebuiltSince);
}

/** The cursor is opaque to clients: the last row's (initiation time, id), the listing's sort key. */
const encodeCursor = (r: Row) => btoa(JSON.stringify([r.initiated_ms, r.id])).replace(/=+$/, "");
export function decodeCursor(cursor: string): [number, string] | null {
  try {
    const v = JSON.parse(atob(cursor)) as unknown;
    return Array.isArray(v) && v.length === 2 && Number.isInteger(v[0]) && typeof v[1] === "string" ? [v[0], v[1]] : null;
  } catch {
    return null;
  }
}

export async function list(db: D1Database, q: ListQuery) {
  const where = ["merchant_id = ?"];
  const args: (string | number)[] = [q.merchantId];
  if (q.status) where.push("status = ?"), args.push(q.status);
  if (q.currency) where.push("currency = ?"), args.push(q.currency);
  if (q.createdFrom) where.push("initiated_ms >= ?"), args.push(Date.parse(q.createdFrom));
  if (q.createdTo) where.push("initiated_ms < ?"), args.push(Date.parse(q.createdTo));
  const after = q.cursor ? decodeCursor(q.cursor) : null;
  if (after) where.push("(initiated_ms, id) < (?, ?)"), args.push(after[0], after[1]);
  const { results } = await db
    .prepare(`SELECT * FROM payments WHERE ${where.join(" AND ")} ORDER BY initiated_ms DESC, id DESC LIMIT ?`)
    .bind(...args, q.limit + 1)
    .all<Row>();
  const page = results.slice(0, q.limit);
  return {
    object: "list" as const,
    data: page.map((r) => ({
      object: "payment_summary" as const,
      id: r.id,
      status: r.status,
      amount: r.amount,
      currency: r.currency,
      initiatedAt: r.initiated_at,
      updatedAt: r.updated_at,
      version: r.version,
      stalled: r.stalled === 1,
      refundedAmount: r.refunded_amount,
    })),
    nextCursor: results.length > q.limit ? encodeCursor(page.at(-1)!) : null,
  };
}

/** Ids of stalled payments, in id order after `after`, at most `limit` (the list lags the objects slightly). */
export async function stalledIds(db: D1Database, after: string | null, limit: number) {
  const { results } = await db
    .prepare("SELECT id FROM payments WHERE stalled = 1 AND id > ? ORDER BY id LIMIT ?")
    .bind(after ?? "", limit)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

/** A rebuild's continuation: when it began, and where it is in the change feed (opaque to callers). */
export const rebuildContinuation = /^(\d+)\.([\s\S]+)$/;

/**
 * One page of a rebuild from the event store's change feed: every stream written to is replayed from its events and
 * its row replaced in place, so the list stays whole while a rebuild runs, or after one that failed (run it again).
 * Call again with the continuation until it comes back null; the last page deletes the rows nobody wrote since the
 * rebuild began (payments Cosmos does not hold). A row the live consumer wrote since then only moves forward: the
 * consumer may record a newer version of a stream between its replay here and its upsert. A page whose read of a
 * stream stays behind that stream's commits fails (503): run it again.
 */
export async function rebuildPage(db: D1Database, store: EventStore, continuation: string | null, legacyMerchantId: string) {
  const [, since, feed] = (continuation && rebuildContinuation.exec(continuation)) || [];
  const now = (await db.prepare(`SELECT ${dbNow} AS now`).first<{ now: number }>())!.now;
  const rebuiltSince = since === undefined ? now : Math.min(Number(since), now); // never later than now: a forged start would delete live rows
  const page = await store.changedStreams(feed ?? null, 100);
  let payments = 0;
  for (const streamId of page.streamIds) {
    // A rebuild may lower a row, so it replays only a read that reaches the stream's version as appends see it (asked
    // first): a read may come from a replica behind the latest commit, which catches up in moments (see readThrough).
    const { state, version } = replay(await readThrough(store, streamId, 1, undefined, await store.version(streamId)));
    if (state.status === "none") continue;
    await projection(db, paymentSummary(state, version, state.merchantId ?? legacyMerchantId), rebuiltSince).run();
    payments++;
  }
  if (page.continuation === null) await db.prepare("DELETE FROM payments WHERE written_at < ?").bind(rebuiltSince).run();
  return { payments, continuation: page.continuation === null ? null : `${rebuiltSince}.${page.continuation}` };
}
