// The relay's message: one committed event, validated with zod where it enters the consumer.
import { z } from "zod";
import type { Config } from "../config.ts";
import type { PaymentSummary } from "../payment/resource.ts";
import { eventIdOf, type EventDocument } from "../core/eventStore.ts";

/** The payment as it was when the event was relayed (at `summary.version` >= the event's), for the read model. */
export const summarySchema = z.object({
  id: z.string(),
  merchantId: z.string(),
  status: z.enum(["initiated", "created", "settled", "completed", "failed", "cancelled"]),
  amount: z.number(),
  currency: z.string(),
  initiatedAt: z.string(),
  updatedAt: z.string(),
  version: z.number().int().positive(),
  stalled: z.boolean(),
  refundedAmount: z.number(),
}) satisfies z.ZodType<PaymentSummary>;

export const eventMessageSchema = z.object({
  eventId: z.string().min(1),
  streamId: z.string().regex(/^pay:[0-9a-f-]{36}$/i),
  version: z.number().int().positive(),
  type: z.string().min(1),
  data: z.record(z.string(), z.unknown()),
  correlationId: z.string().nullable(),
  causationId: z.string().nullable(),
  summary: summarySchema.optional(),
});

export type EventMessage = z.infer<typeof eventMessageSchema>;

/** How long a message waits before its next attempt: exponential backoff with jitter, in whole seconds (the queue's unit), capped. */
export function backoffSeconds(config: Config, attempts: number, random = Math.random) {
  const ceiling = Math.min(config.RETRY_MAX_SECONDS, config.RETRY_BASE_SECONDS * 2 ** Math.max(0, attempts - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * A message to send, due in `delaySeconds`: a delayed one carries `notBefore`, which keeps the wait it was given out of
 * the observed queue lag (see health.ts); one without a delay gives none, so the queue's own delivery delay applies.
 */
export function dueIn<T extends EventMessage>(body: T, delaySeconds: number) {
  const json = "json" as const;
  return delaySeconds > 0 ? { body: { ...body, notBefore: Date.now() + delaySeconds * 1000 }, contentType: json, delaySeconds } : { body, contentType: json };
}

/** The message of a committed event document. */
export function eventMessage(doc: EventDocument, summary?: EventMessage["summary"]): EventMessage {
  return {
    eventId: eventIdOf(doc),
    streamId: doc.stream.id,
    version: doc.stream.version,
    type: doc.eventType,
    data: doc.eventData,
    correlationId: doc.metadata?.correlationId ?? null,
    causationId: doc.metadata?.causationId ?? null,
    ...(summary ? { summary } : {}),
  };
}

const utf8 = new TextEncoder();

/**
 * Messages in batches Cloudflare takes in one `sendBatch`: at most 100, and 256 KB in all, each counted with about 100
 * bytes of the queue's own (kept under, at 250,000). Locally the limit is looser (288 KB), so it is kept here.
 */
export function batches<T extends { body: unknown }>(messages: T[], maxCount = 100, maxBytes = 250_000): T[][] {
  if (messages.length <= 1) return messages.length === 0 ? [] : [messages]; // most relays: one event, which no split helps
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = utf8.encode(JSON.stringify(m.body)).length + 100;
    if (current.length > 0 && (current.length === maxCount || bytes + size > maxBytes)) {
      out.push(current);
      [current, bytes] = [[], 0];
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}
