// End to end over HTTP: payments created on the real `wrangler dev` reach `completed`, and Cosmos holds Regis Pay's document shape.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import seed from "../fixtures/seed-documents.json" with { type: "json" };
import { api, events, stack, storedDocuments, waitForStatus, type Json } from "./helpers.ts";

const lifecycle = ["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted"];
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The stored stream of a completed payment: Regis Pay's envelope plus eventId and metadata, one causal chain. */
function expectCompletedStream(docs: Json[], paymentId: string, requestId: string) {
  const streamId = `pay:${paymentId}`;
  expect(docs.map((d) => d.eventType)).toEqual(lifecycle);
  docs.forEach((doc, i) => {
    expect(doc).toMatchObject({ id: `${streamId}:${i + 1}`, stream: { id: streamId, version: i + 1 }, eventData: { Timestamp: expect.any(String) } });
    expect(doc.eventId).toMatch(uuid);
    expect(doc.metadata).toEqual({ correlationId: requestId, causationId: i === 0 ? requestId : docs[i - 1]!.eventId });
  });
  expect(docs[0]!.eventData).toMatchObject({ PaymentId: paymentId, Amount: 86.1, Currency: "GBP", MerchantId: stack.merchantId });
}

describe("when a merchant creates a payment on Regis Pay's route", () => {
  it("answers its id, completes it, and stores Regis Pay's four documents", async () => {
    const requestId = `e2e-${randomUUID()}`;
    const res = await api("/api/payment/create", { body: { amount: 86.1, currency: "GBP" }, headers: { "request-id": requestId } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ paymentId: expect.stringMatching(uuid) });
    const paymentId = res.body.paymentId as string;

    const payment = await waitForStatus(paymentId, "completed");
    expect(payment).toMatchObject({ amount: 86.1, currency: "GBP", version: 4, stalled: null, failure: null, paymentReference: expect.any(String) });
    expectCompletedStream(await storedDocuments(paymentId), paymentId, requestId);
  });
});

describe("when a merchant creates a payment with an Idempotency-Key", () => {
  it("completes it, and a retry with the key answers the same payment", async () => {
    const key = randomUUID();
    const requestId = `e2e-${randomUUID()}`;
    const body = { amount: 86.1, currency: "GBP", metadata: { orderId: "A-1042" } };
    const first = await api("/api/payments", { body, headers: { "idempotency-key": key, "request-id": requestId } });
    expect(first.status).toBe(201);
    expect(first.headers.get("location")).toBe(`/api/payments/${first.body.id}`);
    const retry = await api("/api/payments", { body, headers: { "idempotency-key": key } });
    expect(retry.status).toBe(201);
    expect(retry.body.id).toBe(first.body.id);

    const payment = await waitForStatus(first.body.id, "completed");
    expect(payment.metadata).toEqual({ orderId: "A-1042" });
    const docs = await storedDocuments(first.body.id);
    expectCompletedStream(docs, first.body.id, requestId);
    expect(docs[0]!.eventData.Metadata).toEqual({ orderId: "A-1042" });

    const history = await api(`/api/payments/${first.body.id}/events?fromVersion=3`);
    expect(history.body.events.map((e: Json) => e.eventType)).toEqual(lifecycle.slice(2));
  });
});

describe("when several payments are created at once", () => {
  it("completes every one of them", async () => {
    const created = await Promise.all(Array.from({ length: 20 }, (_, i) => api("/api/payments", { body: { amount: i + 1, currency: "EUR" } })));
    expect(created.map((r) => r.status)).toEqual(created.map(() => 201));
    for (const { body } of created) await waitForStatus(body.id, "completed", 30_000);
    for (const { body } of created) expect((await storedDocuments(body.id)).map((d) => d.eventType)).toEqual(lifecycle);
  });
});

describe("when Regis Pay's own documents are in the container", () => {
  it("serves the payment they describe to the legacy merchant", async () => {
    for (const document of seed.documents) {
      const { _rid, _self, _etag, _attachments, _ts, ...doc } = document;
      await events.items.create(doc);
    }
    const paymentId = seed.documents[0]!.eventData.PaymentId!;
    const res = await api(`/api/payments/${paymentId}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "completed", amount: 86.1, currency: "GBP", version: 4, paymentReference: "ff7fc400-783e-4070-8a91-bfb3b906729f" });
  });
});

describe("when a request has no valid key", () => {
  it("answers 401 and the OpenAPI document stays public", async () => {
    expect((await api("/api/payments", { body: { amount: 1, currency: "GBP" }, key: "sk_test_unknown" })).status).toBe(401);
    const doc = await api("/openapi.json", { key: null });
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toContain("/api/payments");
  });
});
