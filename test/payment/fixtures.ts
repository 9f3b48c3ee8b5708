// Events of a payment's life, for decider tests.
import type { PaymentEvent } from "../../src/payment/events.ts";

export const at = "2026-11-27T10:00:00.000Z";
export const paymentId = "7551548a-b366-4081-9330-ae19bfc5557f";

export const initiated = (amount = 86.1, currency = "GBP"): PaymentEvent => ({
  type: "PaymentInitiated",
  data: { PaymentId: paymentId, Amount: amount, Currency: currency, MerchantId: "merchant-a", Timestamp: at },
});
export const created: PaymentEvent = { type: "PaymentCreated", data: { PaymentReference: "ref-1", Timestamp: at } };
export const settled: PaymentEvent = { type: "PaymentSettled", data: { PaymentReference: "ref-1", Timestamp: at } };
export const completed: PaymentEvent = { type: "PaymentCompleted", data: { Timestamp: at } };
export const failed: PaymentEvent = { type: "PaymentFailed", data: { Step: "create", Reason: "card_declined", NotifyMerchant: true, Timestamp: at } };
export const cancelled: PaymentEvent = { type: "PaymentCancelled", data: { Reason: null, NotifyMerchant: true, Timestamp: at } };
export const refundRequested = (id: string, amount: number): PaymentEvent => ({
  type: "RefundRequested",
  data: { RefundId: id, Amount: amount, Timestamp: at },
});
export const refundSucceeded = (id: string): PaymentEvent => ({
  type: "RefundSucceeded",
  data: { RefundId: id, ProviderRefundId: `provider-${id}`, Timestamp: at },
});
export const refundFailed = (id: string): PaymentEvent => ({ type: "RefundFailed", data: { RefundId: id, Reason: "declined", Timestamp: at } });
