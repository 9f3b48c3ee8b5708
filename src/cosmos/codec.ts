// The stored-event codec: Cosmos documents <-> recorded payment events, accepting both of Regis Pay's versions.
import { z } from "zod";
import { eventDocument, eventIdOf, type EventDocument } from "../core/eventStore.ts";
import { steps, type PaymentEvent, type Recorded } from "../payment/events.ts";
import { evolve, initialState, type State } from "../payment/state.ts";

const timestamp = z.string().min(1);
// .NET writes absent optional values as null; the domain has them undefined.
const optionalString = z.string().nullish().transform((v) => v ?? undefined);
const step = z.enum(steps);

const eventData = {
  PaymentInitiated: z.object({
    PaymentId: z.string(),
    Amount: z.number(),
    Currency: z.string(),
    MerchantId: optionalString,
    Metadata: z.record(z.string(), z.string()).nullish().transform((v) => v ?? undefined),
    Timestamp: timestamp,
  }),
  PaymentCreated: z.object({ PaymentReference: optionalString, Timestamp: timestamp }),
  PaymentSettled: z.object({ PaymentReference: optionalString, Timestamp: timestamp }),
  PaymentCompleted: z.object({ Timestamp: timestamp }),
  PaymentFailed: z.object({ Step: step, Reason: z.string(), NotifyMerchant: z.boolean().optional(), Timestamp: timestamp }),
  PaymentStepStalled: z.object({ Step: step, Reason: z.string(), Attempts: z.number().int(), RefundId: optionalString, Timestamp: timestamp }),
  PaymentStepRecovered: z.object({ Step: step, RefundId: optionalString, Timestamp: timestamp }),
  PaymentCancelled: z.object({ Reason: z.string().nullable(), NotifyMerchant: z.boolean().optional(), Timestamp: timestamp }),
  RefundRequested: z.object({ RefundId: z.string(), Amount: z.number(), Timestamp: timestamp }),
  RefundSucceeded: z.object({ RefundId: z.string(), ProviderRefundId: z.string(), Timestamp: timestamp }),
  RefundFailed: z.object({ RefundId: z.string(), Reason: z.string(), Timestamp: timestamp }),
} satisfies { [T in PaymentEvent["type"]]: z.ZodType<Extract<PaymentEvent, { type: T }>["data"], unknown> };

export const documentSchema = z.looseObject({
  id: z.string(),
  stream: z.object({ id: z.string(), version: z.number().int().positive() }),
  eventType: z.string(),
  eventData: z.record(z.string(), z.unknown()),
  eventId: z.string().optional(),
  metadata: z.object({ correlationId: z.string().nullable(), causationId: z.string().nullable() }).optional(),
});

export type Decoded = { ok: true; event: Recorded } | { ok: false; version: number; eventType: string; problem: string };

/** A stored document as a recorded event; an unknown type or malformed data is reported, never silently dropped. */
export function decode(doc: EventDocument): Decoded {
  const envelope = documentSchema.safeParse(doc);
  if (!envelope.success) return { ok: false, version: doc.stream?.version ?? 0, eventType: String(doc.eventType), problem: z.prettifyError(envelope.error) };
  const { eventType, eventData: raw, stream } = envelope.data;
  const schema = eventData[eventType as PaymentEvent["type"]] as z.ZodType | undefined;
  if (!schema) return { ok: false, version: stream.version, eventType, problem: `unknown event type ${eventType}` };
  const data = schema.safeParse(raw);
  if (!data.success) return { ok: false, version: stream.version, eventType, problem: z.prettifyError(data.error) };
  return { ok: true, event: { type: eventType, data: data.data, eventId: eventIdOf(envelope.data), version: stream.version } as Recorded };
}

export type Envelope = { eventId: string; correlationId: string | null; causationId: string | null };

export function encode(streamId: string, version: number, event: PaymentEvent, e: Envelope): EventDocument {
  return eventDocument(streamId, version, event.type, event.data, e.eventId, { correlationId: e.correlationId, causationId: e.causationId });
}

/**
 * Folds stored documents onto a state: the version advances over every document, readable or not. Documents that
 * cannot be read, and events the fold ignores (out of turn, or a repeat), are reported.
 */
export function replay(docs: EventDocument[], from: { state: State; version: number } = { state: initialState(), version: 0 }) {
  let { state, version } = from;
  const unreadable: Extract<Decoded, { ok: false }>[] = [];
  for (const doc of docs) {
    const decoded = decode(doc);
    if (!decoded.ok) unreadable.push(decoded);
    else {
      const next = evolve(state, decoded.event);
      if (next === state) unreadable.push({ ok: false, version: doc.stream.version, eventType: doc.eventType, problem: `ignored: cannot follow a payment that is ${state.status}` });
      state = next;
    }
    version = doc.stream.version;
  }
  return { state, version, unreadable };
}
