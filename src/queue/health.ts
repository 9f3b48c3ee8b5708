// The queue's health as its consumer sees it: how long messages wait before delivery. Recovery timers that re-send
// after a fixed time would, under a backlog, re-send everything still waiting and deepen the backlog they mistook
// for loss (congestion collapse); they wait at least twice the observed lag instead, as TCP's retransmission timer
// follows the measured round trip.
import { log } from "../core/log.ts";

/**
 * The longest wait among the batch's first deliveries (retries wait on purpose and say nothing of the queue), counted
 * from when each was due: a copy sent to arrive later carries `notBefore`.
 */
export function observedLagMs(messages: readonly Message<unknown>[], now = Date.now()): number | null {
  const dueAt = (m: Message<unknown>) => Math.max(m.timestamp.getTime(), Number((m.body as { notBefore?: unknown } | null)?.notBefore) || 0);
  const waits = messages.filter((m) => m.attempts === 1).map((m) => now - dueAt(m));
  return waits.length > 0 ? Math.max(0, ...waits) : null;
}

export const recordLag = (db: D1Database, lagMs: number, now = Date.now()) =>
  db
    .prepare("INSERT INTO queue_health (id, lag_ms, observed_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET lag_ms = excluded.lag_ms, observed_at = excluded.observed_at")
    .bind(Math.round(lagMs), now);

/** The latest observed lag while it is recent (older than `ttlMs` it says nothing of now), else 0. */
export async function currentLagMs(db: D1Database, ttlMs: number, now = Date.now()): Promise<number> {
  try {
    const row = await db.prepare("SELECT lag_ms, observed_at FROM queue_health WHERE id = 1").first<{ lag_ms: number; observed_at: number }>();
    return row && now - row.observed_at <= ttlMs ? row.lag_ms : 0;
  } catch (e) {
    log("warn", "queue lag unknown", { error: String(e) });
    return 0;
  }
}
