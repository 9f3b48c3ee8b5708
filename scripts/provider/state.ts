// In-memory state of one simulator (payments, idempotency records, recorded calls, settings) and the one place calls are recorded.
import { fromMinor } from "./money.ts";
import { seededRandom } from "../random.ts";
import { defaultSettings, type RecordedRoute, type Settings } from "./settings.ts";

export type Outcome = "ok" | "replayed" | "duplicate" | "rejected" | "declined" | "error" | "timeout";

// What a handler decided: the HTTP answer plus what the call record needs.
export type Result = { status: number; body: unknown; outcome: Outcome; paymentId?: string; refundId?: string };

export type Refund = { refundId: string; amountMinor: number; createdAt: string; idempotencyKey: string | null };

export type Payment = {
  paymentId: string;
  currency: string;
  amountMinor: number;
  status: "created" | "settled" | "cancelled" | "declined";
  createdAt: string;
  idempotencyKey: string | null;
  // a declined settlement is final: later settles answer the same decline
  decline: Result | null;
  refunds: Refund[];
};

export type Call = {
  seq: number;
  at: string;
  method: string;
  path: string;
  route: RecordedRoute;
  idempotencyKey: string | null;
  body: unknown;
  // null while the request is held (timeout fault)
  status: number | null;
  outcome: Outcome;
  paymentId?: string;
  refundId?: string;
};

export type State = {
  readonly webhookSecret: string | undefined;
  settings: Settings;
  random: () => number;
  payments: Map<string, Payment>;
  // key: "<method> <path> <Idempotency-Key>"; only final answers are kept (success, decline)
  idempotency: Map<string, { fingerprint: string; result: Result }>;
  calls: Call[];
  nextSeq: number;
  // "<method> <path> <Idempotency-Key>" of keyed requests still held or waiting out their latency (a repeat meanwhile is a 409)
  underWay: Set<string>;
  // held calls (settings.hold), woken to look again whenever the settings change
  held: Set<() => void>;
};

export function createState(webhookSecret: string | undefined): State {
  const settings = defaultSettings();
  return {
    webhookSecret,
    settings,
    random: seededRandom(settings.seed),
    payments: new Map(),
    idempotency: new Map(),
    calls: [],
    nextSeq: 1,
    underWay: new Set(),
    held: new Set(),
  };
}

/** Wakes every held call, to look again at whether its route is still held. */
export function wakeHeld(state: State): void {
  for (const wake of state.held) wake();
  state.held.clear();
}

export function resetState(state: State): void {
  wakeHeld(state);
  Object.assign(state, createState(state.webhookSecret));
}

export function recordCall(
  state: State,
  call: { method: string; path: string; route: RecordedRoute; idempotencyKey: string | null; body: unknown },
  result: Result | { status: null; outcome: "timeout" },
): Call {
  const recorded: Call = {
    seq: state.nextSeq++,
    at: new Date().toISOString(),
    ...call,
    status: result.status,
    outcome: result.outcome,
    ...("paymentId" in result && result.paymentId ? { paymentId: result.paymentId } : {}),
    ...("refundId" in result && result.refundId ? { refundId: result.refundId } : {}),
  };
  state.calls.push(recorded);
  return recorded;
}

export function paymentView(payment: Payment) {
  const major = (minor: number) => fromMinor(minor, payment.currency);
  return {
    paymentId: payment.paymentId,
    amount: major(payment.amountMinor),
    currency: payment.currency,
    status: payment.status,
    createdAt: payment.createdAt,
    idempotencyKey: payment.idempotencyKey,
    refundedAmount: major(payment.refunds.reduce((sum, refund) => sum + refund.amountMinor, 0)),
    refunds: payment.refunds.map((refund) => ({
      refundId: refund.refundId,
      amount: major(refund.amountMinor),
      status: "succeeded",
      createdAt: refund.createdAt,
      idempotencyKey: refund.idempotencyKey,
    })),
  };
}
