// Payment commands and decide: a command and the current state give new events or a typed rejection. Pure.
// A command already reflected in the state gives no events, so repeats and redeliveries are harmless.
import type { PaymentEvent, Step } from "./events.ts";
import { nextStep } from "./lifecycle.ts";
import { toMajor } from "./money.ts";
import { committedRefundMinor, isTerminal, type Payment, type State } from "./state.ts";

export type Command =
  | {
      type: "InitiatePayment";
      paymentId: string;
      merchantId: string;
      amountMinor: number;
      currency: string;
      metadata: Record<string, string>;
      at: string;
    }
  | { type: "RecordProviderPayment"; reference: string; at: string }
  | { type: "RecordSettlement"; reference: string; at: string }
  | { type: "CompletePayment"; at: string }
  | { type: "FailPayment"; step: Step; reason: string; at: string }
  | { type: "StallStep"; step: Step; reason: string; attempts: number; refundId?: string; at: string }
  | { type: "RecoverStep"; step: Step; refundId?: string; at: string }
  /** `providerReference`: the provider payment a create attempt may have made, found before cancelling it. */
  | { type: "CancelPayment"; reason: string | null; providerReference?: string; at: string }
  /** `amountMinor` "rest": all that is left to refund, as the state decides it (a retry of it finds its refund by id). */
  | { type: "RequestRefund"; refundId: string; amountMinor: number | "rest"; at: string }
  | { type: "RecordRefundSucceeded"; refundId: string; providerRefundId: string; at: string }
  | { type: "RecordRefundFailed"; refundId: string; reason: string; at: string };

export type RejectionCode =
  | "payment_not_found"
  | "idempotency_key_reused"
  | "invalid_transition"
  | "payment_not_cancellable"
  | "payment_not_settled"
  | "payment_not_refundable"
  | "refund_exceeds_amount"
  | "too_many_refunds"
  | "refund_not_found"
  | "validation_failed";

export type Rejection = { code: RejectionCode; message: string };
export type Decision = { ok: true; events: PaymentEvent[] } | { ok: false; rejection: Rejection };

const accept = (...events: PaymentEvent[]): Decision => ({ ok: true, events });
const reject = (code: RejectionCode, message: string): Decision => ({ ok: false, rejection: { code, message } });
const illegal = (p: Payment, what: string) => reject("invalid_transition", `cannot ${what}: the payment is ${p.status}`);

const sameMetadata = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/**
 * Refunds a payment takes: each is kept in its state, resource and list, which would otherwise grow with the amount over
 * its smallest unit (a million 0.01 refunds of 10,000.00).
 */
export const maxRefunds = 1_000;

export function decide(command: Command, state: State): Decision {
  // The API validates amounts; the domain holds the line too, since a negative refund would free refundable money.
  const amountMinor = "amountMinor" in command ? command.amountMinor : null;
  if (typeof amountMinor === "number" && !(Number.isSafeInteger(amountMinor) && amountMinor > 0))
    return reject("validation_failed", "an amount must be a positive whole number of minor units");
  if (command.type === "InitiatePayment") {
    const c = command;
    if (state.status === "none") {
      const data: Extract<PaymentEvent, { type: "PaymentInitiated" }>["data"] = {
        PaymentId: c.paymentId,
        Amount: toMajor(c.amountMinor, c.currency),
        Currency: c.currency,
        MerchantId: c.merchantId,
        Timestamp: c.at,
      };
      if (Object.keys(c.metadata).length > 0) data.Metadata = c.metadata;
      return accept({ type: "PaymentInitiated", data });
    }
    const same = state.amountMinor === c.amountMinor && state.currency === c.currency && sameMetadata(state.metadata, c.metadata);
    return same ? accept() : reject("idempotency_key_reused", "this payment was created with a different request");
  }
  if (state.status === "none") return reject("payment_not_found", "no such payment");
  const p = state;
  switch (command.type) {
    case "RecordProviderPayment":
      if (p.status === "initiated") return accept({ type: "PaymentCreated", data: { PaymentReference: command.reference, Timestamp: command.at } });
      if (p.reference === command.reference) return accept();
      return illegal(p, "record a provider payment");
    case "RecordSettlement":
      if (p.status === "created") return accept({ type: "PaymentSettled", data: { PaymentReference: command.reference, Timestamp: command.at } });
      if (p.status === "settled" || p.status === "completed") return accept();
      return illegal(p, "settle");
    case "CompletePayment":
      if (p.status === "settled") return accept({ type: "PaymentCompleted", data: { Timestamp: command.at } });
      if (p.status === "completed") return accept();
      return illegal(p, "complete");
    case "FailPayment":
      if (p.status === "initiated" || p.status === "created")
        return accept({ type: "PaymentFailed", data: { Step: command.step, Reason: command.reason, NotifyMerchant: true, Timestamp: command.at } });
      if (p.status === "failed") return accept();
      return illegal(p, "fail");
    case "StallStep": {
      const { step, reason, attempts, refundId, at } = command;
      const data = { Step: step, Reason: reason, Attempts: attempts, Timestamp: at, ...(refundId ? { RefundId: refundId } : {}) };
      // Only a step still due stalls: one whose outcome committed meanwhile (e.g. by an append whose answer was lost,
      // which exhausted the queue's retries) is done, and a stall recorded after it would never be cleared.
      if (refundId) {
        const refund = p.refunds.find((r) => r.id === refundId);
        if (!refund) return reject("refund_not_found", `no refund ${refundId}`);
        const due = step === "refund" ? refund.status === "pending" : step === "notify-refund" && refund.status !== "pending";
        return !due || refund.stalled?.step === step ? accept() : accept({ type: "PaymentStepStalled", data });
      }
      const next = nextStep(p);
      // An ended payment has one step left at most: telling the merchant how it ended.
      if (isTerminal(p) && next?.kind !== step) return illegal(p, `stall step ${step}`);
      return next?.kind !== step || p.stalled?.step === step ? accept() : accept({ type: "PaymentStepStalled", data });
    }
    case "RecoverStep": {
      const { step, refundId, at } = command;
      const stalled = refundId ? p.refunds.find((r) => r.id === refundId)?.stalled : p.stalled;
      if (stalled?.step !== step) return accept();
      return accept({ type: "PaymentStepRecovered", data: { Step: step, Timestamp: at, ...(refundId ? { RefundId: refundId } : {}) } });
    }
    case "CancelPayment": {
      const cancelled: PaymentEvent = { type: "PaymentCancelled", data: { Reason: command.reason, NotifyMerchant: true, Timestamp: command.at } };
      if (p.status === "cancelled") return accept();
      if (p.status === "initiated" && command.providerReference)
        return accept({ type: "PaymentCreated", data: { PaymentReference: command.providerReference, Timestamp: command.at } }, cancelled);
      if (p.status === "initiated" || p.status === "created") return accept(cancelled);
      return reject("payment_not_cancellable", `a ${p.status} payment can no longer be cancelled`);
    }
    case "RequestRefund": {
      const existing = p.refunds.find((r) => r.id === command.refundId);
      if (existing)
        return command.amountMinor === "rest" || existing.amountMinor === command.amountMinor
          ? accept()
          : reject("idempotency_key_reused", "this refund was requested with a different amount");
      if (p.status === "initiated" || p.status === "created") return reject("payment_not_settled", "a payment can be refunded once it is settled");
      if (p.status !== "settled" && p.status !== "completed") return reject("payment_not_refundable", `a ${p.status} payment cannot be refunded`);
      const left = p.amountMinor - committedRefundMinor(p);
      if (command.amountMinor === "rest" && left === 0) return reject("refund_exceeds_amount", "nothing is left to refund");
      const minor = command.amountMinor === "rest" ? left : command.amountMinor;
      if (minor > left) return reject("refund_exceeds_amount", "the refunds would exceed the payment's amount");
      if (p.refunds.length >= maxRefunds) return reject("too_many_refunds", `a payment takes at most ${maxRefunds} refunds`);
      return accept({ type: "RefundRequested", data: { RefundId: command.refundId, Amount: toMajor(minor, p.currency), Timestamp: command.at } });
    }
    case "RecordRefundSucceeded":
    case "RecordRefundFailed": {
      const refund = p.refunds.find((r) => r.id === command.refundId);
      if (!refund) return reject("refund_not_found", `no refund ${command.refundId}`);
      const outcome = command.type === "RecordRefundSucceeded" ? "succeeded" : "failed";
      if (refund.status === outcome) return accept();
      if (refund.status !== "pending") return reject("invalid_transition", `the refund already ${refund.status}`);
      return command.type === "RecordRefundSucceeded"
        ? accept({ type: "RefundSucceeded", data: { RefundId: command.refundId, ProviderRefundId: command.providerRefundId, Timestamp: command.at } })
        : accept({ type: "RefundFailed", data: { RefundId: command.refundId, Reason: command.reason, Timestamp: command.at } });
    }
    default: {
      const unknown: never = command;
      return unknown;
    }
  }
}
