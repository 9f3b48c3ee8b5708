// Payment events. STORED FORMAT - change with care: `type` is the stored `eventType`, `data` the stored
// `eventData` (PascalCase, as Regis Pay writes it). Add fields beside, upcast in the codec, never rename in place.
import { uuidFrom } from "../core/ids.ts";

/** A lifecycle step that can fail or stall. */
export type Step = "create" | "settle" | "notify" | "notify-outcome" | "cancel" | "refund" | "notify-refund";
export const steps = ["create", "settle", "notify", "notify-outcome", "cancel", "refund", "notify-refund"] as const satisfies readonly Step[];

export type PaymentEvent =
  | {
      type: "PaymentInitiated";
      /** MerchantId is absent on Regis Pay's own documents; Metadata only when the merchant sent some. */
      data: { PaymentId: string; Amount: number; Currency: string; MerchantId?: string; Metadata?: Record<string, string>; Timestamp: string };
    }
  /** PaymentReference is the provider's id; Regis Pay's first version wrote it on PaymentSettled instead. */
  | { type: "PaymentCreated"; data: { PaymentReference?: string; Timestamp: string } }
  | { type: "PaymentSettled"; data: { PaymentReference?: string; Timestamp: string } }
  | { type: "PaymentCompleted"; data: { Timestamp: string } }
  /** Terminal: a permanent provider refusal before settlement. */
  /** `NotifyMerchant`: the merchant is told of this end (written since stop 27; an older end was never owed a notification). */
  | { type: "PaymentFailed"; data: { Step: Step; Reason: string; NotifyMerchant?: boolean; Timestamp: string } }
  /** Not terminal: a step exhausted its retries; a re-drive continues it. RefundId for refund steps. */
  | { type: "PaymentStepStalled"; data: { Step: Step; Reason: string; Attempts: number; RefundId?: string; Timestamp: string } }
  /** A stalled step that records no event of its own (a refund's notification) went through once re-driven. */
  | { type: "PaymentStepRecovered"; data: { Step: Step; RefundId?: string; Timestamp: string } }
  | { type: "PaymentCancelled"; data: { Reason: string | null; NotifyMerchant?: boolean; Timestamp: string } }
  | { type: "RefundRequested"; data: { RefundId: string; Amount: number; Timestamp: string } }
  | { type: "RefundSucceeded"; data: { RefundId: string; ProviderRefundId: string; Timestamp: string } }
  | { type: "RefundFailed"; data: { RefundId: string; Reason: string; Timestamp: string } };

export type PaymentEventType = PaymentEvent["type"];

/** An event as committed: its position in the stream and its id (a UUID, or derived from the document id for Regis Pay's documents). */
export type Recorded = PaymentEvent & { eventId: string; version: number };

/** Stream ids are `pay:<uuid>`, as Regis Pay writes them. */
export const streamIdOf = (paymentId: string) => `pay:${paymentId}`;

/**
 * A new event's id. An event that starts a provider call lends the call its Idempotency-Key, so a payment's initiation
 * and a refund's request are named by the payment or the refund they start: a keyed command decided again (its events
 * lost in a container restore) reaches the provider under the key it had, and the provider answers what it already
 * did instead of paying again. Any other event's id is random.
 */
export const eventIdFor = (e: PaymentEvent) =>
  e.type === "PaymentInitiated"
    ? uuidFrom("event", e.type, e.data.PaymentId)
    : e.type === "RefundRequested"
      ? uuidFrom("event", e.type, e.data.RefundId)
      : crypto.randomUUID();
export const paymentIdOf = (streamId: string) => streamId.slice("pay:".length);
