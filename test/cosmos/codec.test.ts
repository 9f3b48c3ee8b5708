import { describe, expect, it } from "vitest";
import type { EventDocument } from "../../src/core/eventStore.ts";
import { decode, encode, replay } from "../../src/cosmos/codec.ts";
import { withoutSystemProperties } from "../../src/cosmos/cosmosEventStore.ts";
import type { PaymentEvent } from "../../src/payment/events.ts";
import { nextStep } from "../../src/payment/lifecycle.ts";
import { paymentResource } from "../../src/payment/resource.ts";
import { fold } from "../../src/payment/state.ts";
import seed from "../fixtures/seed-documents.json";
import { at, cancelled, completed, created, failed, initiated, refundFailed, refundRequested, refundSucceeded, settled } from "../payment/fixtures.ts";

const decodeAll = (docs: EventDocument[]) =>
  docs.map((d) => {
    const r = decode(d);
    if (!r.ok) throw new Error(r.problem);
    return r.event;
  });

describe("the stored-event codec", () => {
  const every: PaymentEvent[] = [
    initiated(),
    { type: "PaymentInitiated", data: { ...initiated().data, Metadata: { order: "42" } } } as PaymentEvent,
    created,
    settled,
    completed,
    failed,
    { type: "PaymentStepStalled", data: { Step: "notify", Reason: "timeout", Attempts: 4, Timestamp: at } },
    { type: "PaymentStepStalled", data: { Step: "refund", Reason: "timeout", Attempts: 4, RefundId: "r1", Timestamp: at } },
    cancelled,
    { type: "PaymentCancelled", data: { Reason: "duplicate order", Timestamp: at } },
    refundRequested("r1", 10.5),
    refundSucceeded("r1"),
    refundFailed("r1"),
  ];

  it.each(every.map((e) => [e.type, e] as const))("round-trips %s through its stored document", (_, event) => {
    const doc = encode("pay:p1", 7, event, { eventId: "e-7", correlationId: "c-1", causationId: "e-6" });
    expect(doc).toEqual({
      id: "pay:p1:7",
      stream: { id: "pay:p1", version: 7 },
      eventType: event.type,
      eventData: event.data,
      eventId: "e-7",
      metadata: { correlationId: "c-1", causationId: "e-6" },
    });
    expect(decode(JSON.parse(JSON.stringify(doc)))).toEqual({ ok: true, event: { ...event, eventId: "e-7", version: 7 } });
  });

  it("keeps the seed document's field order, so documents look like Regis Pay's", () => {
    const doc = encode("pay:p1", 1, initiated(), { eventId: "e-1", correlationId: null, causationId: null });
    expect(Object.keys(doc).slice(0, 4)).toEqual(Object.keys(seed.documents[0]!).slice(0, 4));
  });

  it("loads the four seed documents into a completed 86.1 GBP payment with the provider's reference", () => {
    const events = decodeAll(seed.documents.map(withoutSystemProperties));
    const state = fold(events);
    expect(state.status).toBe("completed");
    if (state.status === "none") return;
    expect(paymentResource(state, 4)).toMatchObject({
      id: "7551548a-b366-4081-9330-ae19bfc5557f",
      amount: 86.1,
      currency: "GBP",
      paymentReference: "ff7fc400-783e-4070-8a91-bfb3b906729f",
      status: "completed",
    });
    expect(state.merchantId).toBeNull();
  });

  it("derives a stable event id from the document id for Regis Pay's documents", () => {
    const [a, b] = [decodeAll(seed.documents), decodeAll(structuredClone(seed.documents))];
    expect(a.map((e) => e.eventId)).toEqual(b.map((e) => e.eventId));
    expect(new Set(a.map((e) => e.eventId)).size).toBe(4);
    expect(a[0]!.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("accepts Regis Pay's later version, with the reference on PaymentCreated and null fields", () => {
    const docs = structuredClone(seed.documents) as EventDocument[];
    docs[1]!.eventData = { PaymentReference: "ref-later", Timestamp: "2024-04-06T00:02:20.2212849Z" };
    docs[2]!.eventData = { PaymentReference: null, Timestamp: "2024-04-06T00:02:24.9964504Z" };
    const state = fold(decodeAll(docs));
    expect(state.status !== "none" && state.reference).toBe("ref-later");
  });

  it("reports an unknown event type or malformed data instead of dropping it", () => {
    const doc = { ...withoutSystemProperties(seed.documents[3]!), eventType: "PaymentTeleported" };
    expect(decode(doc)).toMatchObject({ ok: false, version: 4, eventType: "PaymentTeleported", problem: "unknown event type PaymentTeleported" });
    const bad = { ...withoutSystemProperties(seed.documents[0]!), eventData: { PaymentId: 1 } };
    expect(decode(bad)).toMatchObject({ ok: false, version: 1, eventType: "PaymentInitiated" });
  });

  it("only moves a payment forward: events out of turn (Regis Pay's redelivered PaymentCreated) and repeats are ignored and reported", () => {
    const stream = (events: PaymentEvent[]) => events.map((e, i) => encode("pay:p1", i + 1, e, { eventId: `e-${i + 1}`, correlationId: null, causationId: null }));
    const again: PaymentEvent = { type: "PaymentCreated", data: { PaymentReference: "ref-2", Timestamp: at } };
    // A second PaymentCreated before settlement, and another after completion.
    const late = replay(stream([initiated(50), created, again, settled, completed, again, settled]));
    expect(late.state).toMatchObject({ status: "completed", reference: "ref-1" });
    expect(late.version).toBe(7);
    expect(late.unreadable.map((u) => [u.version, u.eventType, u.problem])).toEqual([
      [3, "PaymentCreated", "ignored: cannot follow a payment that is created"],
      [6, "PaymentCreated", "ignored: cannot follow a payment that is completed"],
      [7, "PaymentSettled", "ignored: cannot follow a payment that is completed"],
    ]);
    expect(nextStep(late.state)).toBeNull();
    // Nothing moves a finished payment: no failure or cancel after settlement, no second initiation.
    expect(replay(stream([initiated(50), created, settled, failed, cancelled, initiated(70)])).state).toMatchObject({ status: "settled", amountMinor: 5000 });
    // A refund requested twice counts once; a refund's outcome is its first one.
    const refunds = replay(stream([initiated(50), created, settled, completed, refundRequested("r1", 30), refundRequested("r1", 30), refundFailed("r1"), refundSucceeded("r1")]));
    expect(refunds.state).toMatchObject({ refunds: [{ id: "r1", amountMinor: 3000, status: "failed" }] });
    expect(refunds.unreadable.map((u) => u.version)).toEqual([6, 8]);
  });

  it("removes Cosmos system properties", () => {
    expect(Object.keys(withoutSystemProperties(seed.documents[0]!))).toEqual(["id", "stream", "eventType", "eventData"]);
  });
});
