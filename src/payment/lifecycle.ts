// The lifecycle as a pure function of state: which steps are due, each keyed by the event that triggers it.
import type { Payment, Refund, State, Trigger } from "./state.ts";

export type StepToRun =
  | { kind: "create"; trigger: Trigger }
  | { kind: "settle"; trigger: Trigger; reference: string }
  | { kind: "notify"; trigger: Trigger }
  /** A failed or cancelled payment's notification: it appends nothing (the payment has ended). */
  | { kind: "notify-outcome"; trigger: Trigger }
  | { kind: "refund"; trigger: Trigger; refund: Refund }
  | { kind: "notify-refund"; trigger: Trigger; refund: Refund };

/** Notifications with no event of their own (a refund's outcome, how a payment ended): their delivery is kept apart. */
export const appendsNothing = (s: StepToRun): s is Extract<StepToRun, { kind: "notify-outcome" | "notify-refund" }> =>
  s.kind === "notify-outcome" || s.kind === "notify-refund";

/** What the payment's own lifecycle must do next: create at the provider, settle, notify (its settlement, or how it ended), or nothing. */
export function nextStep(state: State): StepToRun | null {
  if (state.status === "none") return null;
  switch (state.status) {
    case "initiated":
      return { kind: "create", trigger: state.trigger };
    case "created":
      // Regis Pay's first version kept no reference on PaymentCreated: such a payment cannot be settled by us.
      return state.reference ? { kind: "settle", trigger: state.trigger, reference: state.reference } : null;
    case "settled":
      return { kind: "notify", trigger: state.trigger };
    case "failed":
    case "cancelled":
      // Only an end to notify is the trigger (see NotifyMerchant): an older one was never owed a notification.
      return state.trigger.type === "PaymentFailed" || state.trigger.type === "PaymentCancelled" ? { kind: "notify-outcome", trigger: state.trigger } : null;
    default:
      return null;
  }
}

/** Refund work: a pending refund runs at the provider; a finished one is notified to the merchant. */
export function refundSteps(payment: Payment): StepToRun[] {
  return payment.refunds.map((refund): StepToRun =>
    refund.status === "pending" ? { kind: "refund", trigger: refund.trigger, refund } : { kind: "notify-refund", trigger: refund.trigger, refund },
  );
}

/** Every step of the payment, of which the one whose trigger is a given event runs when that event is delivered. */
export function stepFor(state: State, eventId: string): StepToRun | null {
  const next = nextStep(state);
  if (next?.trigger.eventId === eventId) return next;
  if (state.status === "none") return null;
  return refundSteps(state).find((s) => s.trigger.eventId === eventId) ?? null;
}
