// The load driver shared by the benchmark and the soak run: paced or backlogged payments over HTTP, and statistics.

/** `acceptEncoding`, when set, is sent as the Accept-Encoding of every call; without it Node's fetch asks for gzip or deflate. */
export type Client = { apiUrl: string; key: string; acceptEncoding?: string };
export type Payment = { id: string; status: string; initiatedAt: string; completedAt: string | null; [k: string]: unknown };

export async function call(c: Client, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}) {
  const res = await fetch(`${c.apiUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: {
      authorization: `Bearer ${c.key}`,
      ...(c.acceptEncoding === undefined ? {} : { "accept-encoding": c.acceptEncoding }),
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      ...init.headers,
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: init.timeoutMs === undefined ? undefined : AbortSignal.timeout(init.timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as any, headers: res.headers };
}

/** Milliseconds one call takes, measured at the client. */
export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}

/**
 * A GET, or a POST of `body` with an Idempotency-Key, retried like a careful client: on network errors, answers cut
 * off or not JSON (the runtime restarting mid-response), 5xx and 429, with backoff; a POST keeps its key, which
 * replays it.
 */
export async function reliably(c: Client, path: string, body?: unknown, key?: string) {
  const init = body === undefined ? {} : { body, headers: { "idempotency-key": key ?? crypto.randomUUID() } };
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await call(c, path, { ...init, timeoutMs: 20_000 });
      if (res.status < 500 && res.status !== 429) return res;
    } catch {
      // connection refused or cut while the Worker restarts, or a timeout: retry (with the same key)
    }
    if (attempt >= 40) throw new Error(`${path} kept failing`);
    await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** Math.min(attempt, 6))));
  }
}

/** Creates a payment, retried like a careful client; the amount is rounded to cents first (float sums like 1 + 7/100 carry extra decimals). */
export async function createPayment(c: Client, amount: number, currency = "GBP") {
  const res = await reliably(c, "/api/payments", { amount: Math.round(amount * 100) / 100, currency }, crypto.randomUUID());
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as Payment;
}

/** Runs `task(i)` for i < n with at most `concurrency` in flight. */
export async function pool<T>(n: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

/** Starts `task(i)` at a fixed arrival rate (an open workload: arrivals do not wait for earlier ones). */
export async function paced<T>(n: number, perSecond: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const start = performance.now();
  const running: Promise<T>[] = [];
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    running.push(task(i));
  }
  return Promise.all(running);
}

/** Polls until every payment satisfies `done` (one after another, gently), or throws at the deadline. */
export async function waitAll(c: Client, ids: string[], done: (p: Payment) => boolean, timeoutMs: number, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  const out: Payment[] = [];
  for (const id of ids) {
    for (;;) {
      const res = await call(c, `/api/payments/${id}`);
      if (res.status === 200 && done(res.body as Payment)) {
        out.push(res.body as Payment);
        break;
      }
      if (Date.now() > deadline) throw new Error(`payment ${id} still ${res.body?.status} at the deadline`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
  return out;
}

export function percentile(values: number[], p: number) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
