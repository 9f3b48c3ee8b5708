// Client of the third-party payment provider and of the merchant notification service.
// Every call carries an Idempotency-Key derived from the event that triggered the step, so retries and
// duplicate deliveries never create a second provider payment or refund.
import { z } from "zod";
import { log } from "../core/log.ts";
import { signatureHeader } from "./signature.ts";

/** ok; refused for good (a decline, a conflict: retrying cannot help); or transient (see transientStatus; timeout, network). */
export type CallResult<T> = { ok: true; value: T } | { ok: false; permanent: boolean; reason: string };

export type ProviderSettings = { providerUrl: string; notificationUrl: string; timeoutMs: number; webhookSecret: string };

export type Notification = { paymentId: string; eventId: string; type: string; data: unknown; createdAt: string };

/** PROVIDER_URL "instant:" answers every call at once in-process: the benchmark's ceiling run, never real money. */
export const instantProvider = "instant:";

/**
 * One call. A success must carry what the step records (`answer`): one that does not is retried under the same key,
 * which replays the provider's outcome. A refusal is final only when it is the provider's own answer to this request,
 * which carries its code; an answer without one (a proxy's or gateway's page, a wrong URL) is retried, then stalls
 * for an operator, rather than failing payments for good.
 */
async function call<T>(s: ProviderSettings, url: string, key: string, body: unknown, answer: z.ZodType<T>, headers: Record<string, string> = {}): Promise<CallResult<T>> {
  if (s.providerUrl === instantProvider) return { ok: true, value: answer.parse({ paymentId: key, refundId: key }) };
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(s.timeoutMs),
    });
    // The body too arrives within the timeout: a connection that stalls or breaks mid-answer is no answer.
    text = await res.text();
  } catch (e) {
    // Reasons are stable codes: they reach the payment's events and resource (a stall's reason). The details are logged.
    const timedOut = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError");
    log("warn", "provider call failed", { url, error: String(e), timeoutMs: s.timeoutMs });
    return { ok: false, permanent: false, reason: timedOut ? "provider_timeout" : "provider_unreachable" };
  }
  if (res.ok) {
    const json = text === "" ? {} : parseJson(text);
    const value = json === undefined ? undefined : answer.safeParse(json);
    if (value?.success) return { ok: true, value: value.data };
    log("warn", "provider answered without what the step records", { url, status: res.status });
    return { ok: false, permanent: false, reason: "provider_unreadable_answer" };
  }
  const problem: { code?: string; message?: string } = refusal.safeParse(parseJson(text)).data ?? {};
  // The provider's own code (a decline's is the merchant's business); its free text is logged, not kept.
  if (!problem.code) log("warn", "provider answered without a code", { url, status: res.status, message: problem.message });
  const reason = problem.code ?? `provider_status_${res.status}`;
  return { ok: false, permanent: problem.code !== undefined && !transientStatus(res.status, problem.code), reason };
}

/**
 * What the provider says is bounded before it is kept: its code becomes a reason in the payment's events, and its ids
 * the references later calls carry. Text of any length would reach a queue message (128 KB at most on Cloudflare),
 * and one message too large for the queue would hold up the payment's relay for good.
 */
export const maxCodeLength = 100;
const maxIdLength = 200;
const refusal = z.object({ code: z.string().min(1).transform((code) => [...code].slice(0, maxCodeLength).join("")).optional(), message: z.string().optional().catch(undefined) });
/** The JSON value, or undefined for text that is not JSON. */
const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/**
 * Worth retrying: the provider's trouble (5xx, 408, 429), ours (401, 403: credentials or permissions, for an operator
 * to fix, never the payer's refusal), or the same key's first request still under way (409 idempotency_key_in_use, as
 * Stripe answers: retrying later replays its outcome). Anything else is the provider's answer to this request.
 */
function transientStatus(status: number, code: string | undefined) {
  return status >= 500 || [401, 403, 408, 429].includes(status) || (status === 409 && code === "idempotency_key_in_use");
}

/**
 * Regis Pay's notification contract `{ id, jsonPayload }`. Every retry must send the very same body under its
 * Idempotency-Key (the receiver may refuse a key reused with another body): callers build it from the stream alone.
 */
export const notificationBody = (n: Notification) =>
  JSON.stringify({ id: n.paymentId, jsonPayload: JSON.stringify({ id: n.eventId, type: n.type, createdAt: n.createdAt, data: n.data }) });

const payments = (s: ProviderSettings) => `${s.providerUrl.replace(/\/$/, "")}/psp/api/payments`;
const ref = (reference: string) => encodeURIComponent(reference);

/** What each step records from a success: the provider's ids; the others need nothing from the body. */
const created = z.object({ paymentId: z.string().min(1).max(maxIdLength) });
const refunded = z.object({ refundId: z.string().min(1).max(maxIdLength) });
const anything = z.unknown();

export const provider = {
  create: (s: ProviderSettings, key: string, amount: number, currency: string) => call(s, `${payments(s)}/create`, key, { amount, currency }, created),
  settle: (s: ProviderSettings, key: string, reference: string) => call(s, `${payments(s)}/${ref(reference)}/settle`, key, {}, anything),
  cancel: (s: ProviderSettings, key: string, reference: string) => call(s, `${payments(s)}/${ref(reference)}/cancel`, key, {}, anything),
  refund: (s: ProviderSettings, key: string, reference: string, amount: number) => call(s, `${payments(s)}/${ref(reference)}/refunds`, key, { amount }, refunded),
  /** Sends a notification body (see notificationBody), signed over the raw body with the current time. */
  async notify(s: ProviderSettings, key: string, body: string, nowSeconds: number) {
    const signature = await signatureHeader(s.webhookSecret, body, nowSeconds);
    return call(s, `${s.notificationUrl.replace(/\/$/, "")}/notifications/api/send`, key, body, anything, { "regis-signature": signature });
  },
};
