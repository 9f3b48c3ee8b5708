// The public view of a payment and its refunds: what the API answers and what merchant notifications carry.
import { toMajor } from "./money.ts";
import { refundedMinor, type Payment, type Refund } from "./state.ts";

export type RefundResource = ReturnType<typeof refundResource>;
export type PaymentResource = ReturnType<typeof paymentResource>;
export type PaymentSummary = ReturnType<typeof paymentSummary>;

export function refundResource(payment: Payment, r: Refund) {
  return {
    object: "refund" as const,
    id: r.id,
    paymentId: payment.id,
    amount: toMajor(r.amountMinor, payment.currency),
    currency: payment.currency,
    status: r.status,
    providerRefundId: r.providerRefundId,
    failureReason: r.reason,
    stalled: r.stalled,
    requestedAt: r.requestedAt,
    completedAt: r.completedAt,
  };
}

export function paymentResource(p: Payment, version: number) {
  return {
    object: "payment" as const,
    id: p.id,
    status: p.status,
    amount: toMajor(p.amountMinor, p.currency),
    currency: p.currency,
    paymentReference: p.reference,
    metadata: p.metadata,
    stalled: p.stalled,
    failure: p.failure,
    cancellation: p.cancellation,
    refundedAmount: toMajor(refundedMinor(p), p.currency),
    refunds: p.refunds.map((r) => refundResource(p, r)),
    version,
    initiatedAt: p.times.initiatedAt,
    createdAt: p.times.createdAt ?? null,
    settledAt: p.times.settledAt ?? null,
    completedAt: p.times.completedAt ?? null,
    failedAt: p.times.failedAt ?? null,
    cancelledAt: p.times.cancelledAt ?? null,
  };
}

/** One row of the payments list: what a merchant filters and pages by. `updatedAt` is the newest stage's time. */
export function paymentSummary(p: Payment, version: number, merchantId: string) {
  const t = p.times;
  const updatedAt = [t.initiatedAt, t.createdAt, t.settledAt, t.completedAt, t.failedAt, t.cancelledAt, ...p.refunds.map((r) => r.completedAt ?? r.requestedAt)]
    .filter((x): x is string => Boolean(x))
    .reduce((latest, x) => (Date.parse(x) > Date.parse(latest) ? x : latest));
  return {
    id: p.id,
    merchantId,
    status: p.status,
    amount: toMajor(p.amountMinor, p.currency),
    currency: p.currency,
    initiatedAt: t.initiatedAt,
    updatedAt,
    version,
    stalled: p.stalled !== null || p.refunds.some((r) => r.stalled !== null),
    refundedAmount: toMajor(refundedMinor(p), p.currency),
  };
}
