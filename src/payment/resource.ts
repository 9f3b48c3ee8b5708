// The public view of a payment and its refunds: what the API answers and what merchant notifications carry.
import { toMajor } from "./money.ts";
import { refundedMinor, type Payment, type Refund } from "./state.ts";

export type RefundResource = ReturnType<typeof refundResource>;
export type PaymentResource = ReturnType<typeof paymentResource>;

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
