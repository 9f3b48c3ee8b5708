// Payment state and evolve: the fold of a stream's events. Pure.
import type { Recorded, Step } from "./events.ts";
import { storedToMinor } from "./money.ts";

export type Status = "initiated" | "created" | "settled" | "completed" | "failed" | "cancelled";
export const terminalStatuses: readonly Status[] = ["completed", "failed", "cancelled"];

/** The event that triggered a pending step: steps are keyed by it (and so are the provider's idempotency keys). */
export type Trigger = { eventId: string; version: number; type: Recorded["type"] };

export type Stall = { step: Step; reason: string; attempts: number; at: string };

export type Refund = {
  id: string;
  amountMinor: number;
  status: "pending" | "succeeded" | "failed";
  requestedAt: string;
  completedAt: string | null;
  providerRefundId: string | null;
  reason: string | null;
  trigger: Trigger;
  stalled: Stall | null;
};

export type Payment = {
  status: Status;
  id: string;
  /** null on Regis Pay's own documents: the payment then belongs to the configured legacy merchant. */
  merchantId: string | null;
  amountMinor: number;
  currency: string;
  metadata: Record<string, string>;
  reference: string | null;
  /** The newest Initiated/Created/Settled event, or end to notify (Failed/Cancelled): it triggers the next lifecycle step. */
  trigger: Trigger;
  stalled: Stall | null;
  failure: { step: Step; reason: string } | null;
  cancellation: { reason: string | null } | null;
  refunds: Refund[];
  times: { initiatedAt: string; createdAt?: string; settledAt?: string; completedAt?: string; failedAt?: string; cancelledAt?: string };
};

export type State = { status: "none" } | Payment;
export const initialState = (): State => ({ status: "none" });

export const isTerminal = (s: State) => s.status !== "none" && terminalStatuses.includes(s.status);

/** Sum of refunds that are requested and not failed (Adyen's rule): what is no longer refundable. */
export const committedRefundMinor = (p: Payment) =>
  p.refunds.reduce((sum, r) => (r.status === "failed" ? sum : sum + r.amountMinor), 0);
export const refundedMinor = (p: Payment) =>
  p.refunds.reduce((sum, r) => (r.status === "succeeded" ? sum + r.amountMinor : sum), 0);

const triggerOf = (e: Recorded): Trigger => ({ eventId: e.eventId, version: e.version, type: e.type });

function updateRefund(p: Payment, id: string, change: (r: Refund) => Refund): Payment {
  return { ...p, refunds: p.refunds.map((r) => (r.id === id ? change(r) : r)) };
}

/**
 * The statuses each lifecycle event may follow. The fold only moves forward: an event out of turn (Regis Pay's
 * redelivered messages append a second PaymentCreated, possibly after completion) is ignored, never a step back.
 */
const follows: Partial<Record<Recorded["type"], readonly Status[]>> = {
  PaymentCreated: ["initiated"],
  PaymentSettled: ["initiated", "created"],
  PaymentCompleted: ["settled"],
  PaymentFailed: ["initiated", "created"],
  PaymentCancelled: ["initiated", "created"],
};

/** Folds one event onto the state; an event that cannot apply (out of turn, a repeat) returns the same state object. */
export function evolve(state: State, event: Recorded): State {
  if (event.type === "PaymentInitiated") {
    if (state.status !== "none") return state;
    const d = event.data;
    return {
      status: "initiated",
      id: d.PaymentId,
      merchantId: d.MerchantId ?? null,
      amountMinor: storedToMinor(d.Amount, d.Currency),
      currency: d.Currency,
      metadata: d.Metadata ?? {},
      reference: null,
      trigger: triggerOf(event),
      stalled: null,
      failure: null,
      cancellation: null,
      refunds: [],
      times: { initiatedAt: d.Timestamp },
    };
  }
  // Anything before PaymentInitiated is unreadable history; the codec reports it, evolve ignores it.
  if (state.status === "none") return state;
  const p = state;
  if (follows[event.type]?.includes(p.status) === false) return p;
  if (event.type === "RefundRequested" && p.refunds.some((r) => r.id === event.data.RefundId)) return p;
  if ((event.type === "RefundSucceeded" || event.type === "RefundFailed") && p.refunds.find((r) => r.id === event.data.RefundId)?.status !== "pending") return p;
  switch (event.type) {
    case "PaymentCreated":
      return {
        ...p,
        status: "created",
        reference: event.data.PaymentReference ?? p.reference,
        trigger: triggerOf(event),
        stalled: null,
        times: { ...p.times, createdAt: event.data.Timestamp },
      };
    case "PaymentSettled":
      return {
        ...p,
        status: "settled",
        reference: event.data.PaymentReference ?? p.reference,
        trigger: triggerOf(event),
        stalled: null,
        times: { ...p.times, settledAt: event.data.Timestamp },
      };
    case "PaymentCompleted":
      return { ...p, status: "completed", stalled: null, times: { ...p.times, completedAt: event.data.Timestamp } };
    case "PaymentFailed":
      return {
        ...p,
        status: "failed",
        ...(event.data.NotifyMerchant ? { trigger: triggerOf(event) } : {}),
        stalled: null,
        failure: { step: event.data.Step, reason: event.data.Reason },
        times: { ...p.times, failedAt: event.data.Timestamp },
      };
    case "PaymentCancelled":
      return {
        ...p,
        status: "cancelled",
        ...(event.data.NotifyMerchant ? { trigger: triggerOf(event) } : {}),
        stalled: null,
        cancellation: { reason: event.data.Reason },
        times: { ...p.times, cancelledAt: event.data.Timestamp },
      };
    case "PaymentStepRecovered":
      return event.data.RefundId ? updateRefund(p, event.data.RefundId, (r) => ({ ...r, stalled: null })) : { ...p, stalled: null };
    case "PaymentStepStalled": {
      const d = event.data;
      const stall: Stall = { step: d.Step, reason: d.Reason, attempts: d.Attempts, at: d.Timestamp };
      return d.RefundId ? updateRefund(p, d.RefundId, (r) => ({ ...r, stalled: stall })) : { ...p, stalled: stall };
    }
    case "RefundRequested":
      return {
        ...p,
        refunds: [
          ...p.refunds,
          {
            id: event.data.RefundId,
            amountMinor: storedToMinor(event.data.Amount, p.currency),
            status: "pending",
            requestedAt: event.data.Timestamp,
            completedAt: null,
            providerRefundId: null,
            reason: null,
            trigger: triggerOf(event),
            stalled: null,
          },
        ],
      };
    case "RefundSucceeded":
      return updateRefund(p, event.data.RefundId, (r) => ({
        ...r,
        status: "succeeded",
        providerRefundId: event.data.ProviderRefundId,
        completedAt: event.data.Timestamp,
        trigger: triggerOf(event),
        stalled: null,
      }));
    case "RefundFailed":
      return updateRefund(p, event.data.RefundId, (r) => ({
        ...r,
        status: "failed",
        reason: event.data.Reason,
        completedAt: event.data.Timestamp,
        trigger: triggerOf(event),
        stalled: null,
      }));
    default: {
      const unknown: never = event;
      return unknown;
    }
  }
}

export const fold = (events: Iterable<Recorded>, state: State = initialState()): State => {
  let s = state;
  for (const e of events) s = evolve(s, e);
  return s;
};
