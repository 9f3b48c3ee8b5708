// `npm run demo`: creates a payment on the running service and prints each event of its stream as it lands.
// Env: API_URL, API_KEY (default: the dev key of `npm start`), DEMO_AMOUNT, DEMO_CURRENCY, DEMO_TIMEOUT_MS, DEMO_POLL_MS,
// DEMO_REQUEST_TIMEOUT_MS.
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

type StoredEvent = { stream: { version: number }; eventType: string; eventData: Record<string, any> };

const apiUrl = (process.env.API_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");
const timeoutMs = Number(process.env.DEMO_TIMEOUT_MS ?? 30_000);
const pollMs = Number(process.env.DEMO_POLL_MS ?? 50);
const requestTimeoutMs = Number(process.env.DEMO_REQUEST_TIMEOUT_MS ?? 10_000);
const amount = Number(process.env.DEMO_AMOUNT ?? 86.1);
const currency = process.env.DEMO_CURRENCY ?? "GBP";
const devKeysFile = resolve(import.meta.dirname, "../.local/dev-keys.json");

function fail(message: string): never {
  console.error(`demo: ${message}`);
  process.exit(1);
}

const apiKey = process.env.API_KEY ?? (existsSync(devKeysFile) ? (JSON.parse(readFileSync(devKeysFile, "utf8")) as { merchantKey: string }).merchantKey : undefined);
if (!apiKey) fail("no API key: set API_KEY, or run `npm start` once (it writes .local/dev-keys.json)");

async function call(method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
  if (body !== undefined) Object.assign(headers, { "content-type": "application/json", "idempotency-key": randomUUID() });
  let res: Response;
  try {
    res = await fetch(`${apiUrl}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(requestTimeoutMs) });
  } catch (e) {
    if ((e as Error).name === "TimeoutError") fail(`${method} ${path}: no answer within ${requestTimeoutMs} ms`);
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    fail(`Regis Pay is not answering at ${apiUrl} (${cause}); start it with \`npm start\``);
  }
  const json = (await res.json().catch(() => null)) as Record<string, any> | null;
  if (!res.ok) fail(`${method} ${path} answered ${res.status}: ${json?.detail ?? json?.title ?? "no details"}`);
  return json ?? {};
}

const payment = await call("POST", "/api/payments", { amount, currency });
const id = String(payment.id);
console.log(`payment ${id}: ${payment.amount} ${payment.currency}`);

const deadline = Date.now() + timeoutMs;
let createdAt: number | undefined;
let fromVersion = 1;
for (;;) {
  const { events } = (await call("GET", `/api/payments/${id}/events?fromVersion=${fromVersion}`)) as { events: StoredEvent[] };
  for (const event of events) {
    const at = Date.parse(event.eventData.Timestamp);
    createdAt ??= at;
    console.log(`  v${event.stream.version}  ${event.eventType.padEnd(18)} +${Math.round(at - createdAt)} ms`);
    fromVersion = event.stream.version + 1;
    if (event.eventType === "PaymentCompleted") process.exit(0);
    if (event.eventType === "PaymentFailed") fail(`payment failed at step ${event.eventData.Step}: ${event.eventData.Reason}`);
    if (event.eventType === "PaymentCancelled") fail("payment was cancelled");
  }
  if (events.length === 0) {
    const current = await call("GET", `/api/payments/${id}`);
    if (current.stalled) fail(`payment stalled at step ${current.stalled.step} after ${current.stalled.attempts} attempts: ${current.stalled.reason}`);
    if (Date.now() > deadline) fail(`payment not completed within ${timeoutMs} ms (status ${current.status}); raise DEMO_TIMEOUT_MS to wait longer`);
  }
  await new Promise((r) => setTimeout(r, pollMs));
}
