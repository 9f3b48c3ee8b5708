import { describe, expect, it } from "vitest";
import { decide, maxRefunds, type Command } from "../../src/payment/decide.ts";
import type { PaymentEvent } from "../../src/payment/events.ts";
import { at, cancelled, completed, created, failed, initiated, paymentId, refundFailed, refundRequested, refundSucceeded, settled } from "./fixtures.ts";
import { given } from "./given.ts";

const initiate = (amountMinor = 8610, currency = "GBP", metadata: Record<string, string> = {}): Command => ({
  type: "InitiatePayment",
  paymentId,
  merchantId: "merchant-a",
  amountMinor,
  currency,
  metadata,
  at,
});
const recordCreated = (reference = "ref-1"): Command => ({ type: "RecordProviderPayment", reference, at });
const recordSettled: Command = { type: "RecordSettlement", reference: "ref-1", at };
const complete: Command = { type: "CompletePayment", at };
const fail: Command = { type: "FailPayment", step: "create", reason: "card_declined", at };
const stall: Command = { type: "StallStep", step: "settle", reason: "provider unavailable", attempts: 4, at };
const cancel = (providerReference?: string): Command => ({ type: "CancelPayment", reason: "customer asked", at, ...(providerReference ? { providerReference } : {}) });
const refund = (refundId: string, amountMinor: number | "rest"): Command => ({ type: "RequestRefund", refundId, amountMinor, at });
const refundOk = (refundId: string): Command => ({ type: "RecordRefundSucceeded", refundId, providerRefundId: `provider-${refundId}`, at });
const refundKo = (refundId: string): Command => ({ type: "RecordRefundFailed", refundId, reason: "declined", at });

describe("when there is no payment yet", () => {
  it("initiates it, storing the amount as Regis Pay does", () => {
    given().when(initiate()).then([initiated()]);
  });
  it("stores exact amounts for currencies with 0 and 3 minor digits", () => {
    given().when(initiate(100, "JPY")).then([initiated(100, "JPY")]);
    given().when(initiate(1234, "KWD")).then([initiated(1.234, "KWD")]);
  });
  it.each([[-1], [0], [Number.MAX_SAFE_INTEGER + 2]])("refuses to initiate %s minor units", (amountMinor) => given().when(initiate(amountMinor)).thenRejected("validation_failed"));
  it("keeps the merchant's metadata only when there is some", () => {
    const decision = decide(initiate(), { status: "none" });
    expect(decision.ok && "Metadata" in decision.events[0]!.data).toBe(false);
    given()
      .when(initiate(8610, "GBP", { order: "42" }))
      .then([{ type: "PaymentInitiated", data: { ...initiated().data, Metadata: { order: "42" } } as never }]);
  });
  it.each([recordCreated(), recordSettled, complete, fail, stall, cancel(), refund("r1", 100), refundOk("r1")])("rejects $type", (command) => {
    given().when(command).thenRejected("payment_not_found");
  });
});

describe("when the payment is initiated", () => {
  it("records the provider's payment", () => given(initiated()).when(recordCreated()).then([created]));
  it("treats the same request again as a repeat", () => given(initiated()).when(initiate()).thenNothing());
  it("refuses the same payment id with a different request", () => {
    given(initiated()).when(initiate(8611)).thenRejected("idempotency_key_reused");
    given(initiated()).when(initiate(8610, "EUR")).thenRejected("idempotency_key_reused");
    given(initiated()).when(initiate(8610, "GBP", { a: "b" })).thenRejected("idempotency_key_reused");
  });
  it("refuses to settle before the provider created it", () => given(initiated()).when(recordSettled).thenRejected("invalid_transition"));
  it("refuses to complete", () => given(initiated()).when(complete).thenRejected("invalid_transition"));
  it("fails on a permanent refusal", () => given(initiated()).when(fail).then([failed]));
  it("marks a stalled step, once", () =>
    given(initiated(), created)
      .when(stall)
      .then([{ type: "PaymentStepStalled", data: { Step: "settle", Reason: "provider unavailable", Attempts: 4, Timestamp: at } }]));
  it("is cancelled", () => given(initiated()).when(cancel()).then([{ type: "PaymentCancelled", data: { Reason: "customer asked", NotifyMerchant: true, Timestamp: at } }]));
  it("is created then cancelled when a create attempt reached the provider", () =>
    given(initiated())
      .when(cancel("ref-9"))
      .then([
        { type: "PaymentCreated", data: { PaymentReference: "ref-9", Timestamp: at } },
        { type: "PaymentCancelled", data: { Reason: "customer asked", NotifyMerchant: true, Timestamp: at } },
      ]));
  it("cannot be refunded yet", () => given(initiated()).when(refund("r1", 100)).thenRejected("payment_not_settled"));
});

describe("when the payment is created", () => {
  it("settles", () => given(initiated(), created).when(recordSettled).then([settled]));
  it("treats the provider payment again as a repeat", () => given(initiated(), created).when(recordCreated()).thenNothing());
  it("refuses another provider payment", () => given(initiated(), created).when(recordCreated("ref-2")).thenRejected("invalid_transition"));
  it("fails on a permanent refusal of the settlement", () =>
    given(initiated(), created)
      .when({ ...fail, step: "settle" } as Command)
      .then([{ type: "PaymentFailed", data: { Step: "settle", Reason: "card_declined", NotifyMerchant: true, Timestamp: at } }]));
  it("is cancelled", () => given(initiated(), created).when(cancel()).then([{ type: "PaymentCancelled", data: { Reason: "customer asked", NotifyMerchant: true, Timestamp: at } }]));
  it("cannot be refunded yet", () => given(initiated(), created).when(refund("r1", 100)).thenRejected("payment_not_settled"));
  it("clears a stall once the step succeeds", () => {
    const state = given(initiated(), created).when(stall).then([
      { type: "PaymentStepStalled", data: { Step: "settle", Reason: "provider unavailable", Attempts: 4, Timestamp: at } },
    ]);
    expect(state.status !== "none" && state.stalled?.step).toBe("settle");
    const after = given(initiated(), created, { type: "PaymentStepStalled", data: { Step: "settle", Reason: "x", Attempts: 4, Timestamp: at } })
      .when(recordSettled)
      .then([settled]);
    expect(after.status !== "none" && after.stalled).toBeNull();
  });
});

describe("when the payment is settled", () => {
  const history = [initiated(50), created, settled];
  it("completes", () => given(...history).when(complete).then([completed]));
  it("treats the settlement again as a repeat", () => given(...history).when(recordSettled).thenNothing());
  it("can no longer fail", () => given(...history).when(fail).thenRejected("invalid_transition"));
  it("can no longer be cancelled", () => given(...history).when(cancel()).thenRejected("payment_not_cancellable"));
  it("refunds part of the amount", () => given(...history).when(refund("r1", 1000)).then([refundRequested("r1", 10)]));
  it("refunds exactly the remainder", () => given(...history, refundRequested("r1", 49.99)).when(refund("r2", 1)).then([refundRequested("r2", 0.01)]));
  it.each([[-5000], [0], [1.5]])("refuses a refund of %s minor units, whatever called it", (amountMinor) =>
    given(...history).when(refund("r1", amountMinor)).thenRejected("validation_failed"));
  it("refuses a refund over the amount", () => given(...history, refundRequested("r1", 49.99)).when(refund("r2", 2)).thenRejected("refund_exceeds_amount"));
  it("counts pending and succeeded refunds, not failed ones", () => {
    given(...history, refundRequested("r1", 30), refundSucceeded("r1"), refundRequested("r2", 20)).when(refund("r3", 1)).thenRejected("refund_exceeds_amount");
    given(...history, refundRequested("r1", 30), refundFailed("r1")).when(refund("r2", 5000)).then([refundRequested("r2", 50)]);
  });
  it("treats the same refund id and amount as a repeat, and another amount as a reused key", () => {
    given(...history, refundRequested("r1", 10)).when(refund("r1", 1000)).thenNothing();
    given(...history, refundRequested("r1", 10)).when(refund("r1", 999)).thenRejected("idempotency_key_reused");
  });
  it("refunds exactly in a currency with 3 decimals", () =>
    given(initiated(1.234, "KWD"), created, settled, refundRequested("r1", 1.233)).when(refund("r2", 1)).then([refundRequested("r2", 0.001)]));
  it("records a refund's success and failure", () => {
    given(...history, refundRequested("r1", 10)).when(refundOk("r1")).then([refundSucceeded("r1")]);
    given(...history, refundRequested("r1", 10)).when(refundKo("r1")).then([refundFailed("r1")]);
  });
  it("refuses the opposite outcome of a finished refund, and an unknown refund", () => {
    given(...history, refundRequested("r1", 10), refundSucceeded("r1")).when(refundKo("r1")).thenRejected("invalid_transition");
    given(...history, refundRequested("r1", 10), refundFailed("r1")).when(refundOk("r1")).thenRejected("invalid_transition");
    given(...history).when(refundOk("r9")).thenRejected("refund_not_found");
  });
  it("stalls only a step still due: not one whose outcome committed (an append whose answer was lost)", () => {
    given(initiated(), created, settled).when(stall).thenNothing();
    given(initiated()).when(stall).thenNothing();
    const stallRefund = (step: "refund" | "notify-refund"): Command => ({ type: "StallStep", step, reason: "provider down", attempts: 4, refundId: "r1", at });
    given(...history, refundRequested("r1", 10), refundSucceeded("r1")).when(stallRefund("refund")).thenNothing();
    given(...history, refundRequested("r1", 10), refundFailed("r1")).when(stallRefund("refund")).thenNothing();
    given(...history, refundRequested("r1", 10)).when(stallRefund("notify-refund")).thenNothing();
  });
  it("stalls a refund step on that refund", () =>
    given(...history, refundRequested("r1", 10))
      .when({ type: "StallStep", step: "refund", reason: "provider down", attempts: 4, refundId: "r1", at })
      .then([{ type: "PaymentStepStalled", data: { Step: "refund", Reason: "provider down", Attempts: 4, RefundId: "r1", Timestamp: at } }]));
  it("ends a refund notification's stall once it went through, and only a stall of that step", () => {
    const recover: Command = { type: "RecoverStep", step: "notify-refund", refundId: "r1", at };
    const stalled = { type: "PaymentStepStalled", data: { Step: "notify-refund", Reason: "500", Attempts: 4, RefundId: "r1", Timestamp: at } } as const;
    given(...history, refundRequested("r1", 10), refundSucceeded("r1"), stalled)
      .when(recover)
      .then([{ type: "PaymentStepRecovered", data: { Step: "notify-refund", RefundId: "r1", Timestamp: at } }]);
    given(...history, refundRequested("r1", 10), refundSucceeded("r1"), stalled, { type: "PaymentStepRecovered", data: { Step: "notify-refund", RefundId: "r1", Timestamp: at } })
      .when(recover)
      .thenNothing();
    given(...history, refundRequested("r1", 10), refundSucceeded("r1")).when(recover).thenNothing();
  });
});

describe("when the payment is completed", () => {
  const history = [initiated(50), created, settled, completed];
  it("treats completion again as a repeat", () => given(...history).when(complete).thenNothing());
  it.each([fail, cancel(), stall])("rejects $type", (command) => {
    given(...history).when(command).thenRejected(command.type === "CancelPayment" ? "payment_not_cancellable" : "invalid_transition");
  });
  it("can still be refunded", () => given(...history).when(refund("r1", 5000)).then([refundRequested("r1", 50)]));
  it(`takes at most ${maxRefunds} refunds, then answers too_many_refunds though money is left`, () => {
    const many = Array.from({ length: maxRefunds }, (_, i) => refundRequested(`r${i}`, 0.01));
    given(initiated(), created, settled, ...many).when(refund("one-more", 1)).thenRejected("too_many_refunds");
    // A retry of a refund it holds still replays; one over the amount is told so first.
    given(initiated(), created, settled, ...many).when(refund("r0", 1)).thenNothing();
    given(initiated(), created, settled, ...many).when(refund("one-more", 8610)).thenRejected("refund_exceeds_amount");
    given(initiated(), created, settled, ...many.slice(1)).when(refund("one-more", 1)).then([refundRequested("one-more", 0.01)]);
  });
  it("refunds all that is left when asked for the rest, a failed refund's amount included, then nothing", () => {
    const refunded = [refundRequested("r1", 10), refundSucceeded("r1"), refundRequested("r2", 5), refundFailed("r2")];
    given(...history, ...refunded).when(refund("r3", "rest")).then([refundRequested("r3", 40)]);
    // A retry of it (its append's answer lost) finds its refund, whatever is left now.
    given(...history, ...refunded, refundRequested("r3", 40)).when(refund("r3", "rest")).thenNothing();
    given(...history, ...refunded, refundRequested("r3", 40)).when(refund("r4", "rest")).thenRejected("refund_exceeds_amount");
  });
});

describe.each([
  ["failed", [initiated(), failed]],
  ["cancelled", [initiated(), cancelled]],
])("when the payment is %s", (status, history) => {
  it.each([recordSettled, complete, stall])("rejects $type", (command) => given(...history).when(command).thenRejected("invalid_transition"));
  it("rejects a provider payment", () => given(...history).when(recordCreated("ref-2")).thenRejected("invalid_transition"));
  it("cannot be refunded", () => given(...history).when(refund("r1", 100)).thenRejected("payment_not_refundable"));
  it(`treats its own terminal command again as a repeat`, () =>
    given(...history)
      .when(status === "failed" ? fail : cancel())
      .thenNothing());
  it("stalls and recovers only the notification of how it ended", () => {
    const stallNotify: Command = { type: "StallStep", step: "notify-outcome", reason: "merchant down", attempts: 4, at };
    const stalled: PaymentEvent = { type: "PaymentStepStalled", data: { Step: "notify-outcome", Reason: "merchant down", Attempts: 4, Timestamp: at } };
    given(...history).when(stallNotify).then([stalled]);
    given(...history, stalled).when(stallNotify).thenNothing();
    given(...history, stalled).when({ type: "RecoverStep", step: "notify-outcome", at }).then([{ type: "PaymentStepRecovered", data: { Step: "notify-outcome", Timestamp: at } }]);
    // An end written before ends were notified (no NotifyMerchant) owes nothing: no step, no stall.
    const older = history.map((e) => (e.type === "PaymentFailed" || e.type === "PaymentCancelled" ? ({ ...e, data: { ...e.data, NotifyMerchant: undefined } } as PaymentEvent) : e));
    given(...older).when(stallNotify).thenRejected("invalid_transition");
  });
  it("cannot be cancelled unless it already is", () => {
    if (status === "failed") given(...history).when(cancel()).thenRejected("payment_not_cancellable");
    else given(...history).when(fail).thenRejected("invalid_transition");
  });
});
