import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { duplicateKey } from "../../src/http/app.ts";
import worker from "../../src/index.ts";
import { uuidFrom, uuidPattern } from "../../src/core/ids.ts";
import type { PaymentObject } from "../../src/durable/paymentObject.ts";
import { api, createPayment, emulator, waitForPayment, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";

const problemOf = (res: { status: number; headers: Headers; body: Json }) => ({
  status: res.status,
  type: res.headers.get("content-type"),
  code: res.body?.code,
});

describe("creating a payment on Regis Pay's route", () => {
  it.each(["GBP", "EUR", "USD"])("answers 200 with a payment id for 100 %s", async (currency) => {
    const res = await api("/api/payment/create", { body: { amount: 100, currency } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ paymentId: expect.stringMatching(uuidPattern) });
  });

  it.each([0, -5])("refuses amount %s with an amount error", async (amount) => {
    const res = await api("/api/payment/create", { body: { amount, currency: "GBP" } });
    expect(problemOf(res)).toEqual({ status: 400, type: "application/problem+json", code: "validation_failed" });
    expect(res.body.errors.amount).toEqual([expect.any(String)]);
  });

  it.each([{ amount: 10 }, { amount: 10, currency: "YEN" }, { amount: 10, currency: "gbp" }])("refuses a missing or unsupported currency: %j", async (body) => {
    const res = await api("/api/payment/create", { body });
    expect(res.status).toBe(400);
    expect(res.body.errors.currency).toEqual([expect.any(String)]);
  });
});

describe("creating a payment", () => {
  it("answers 201 with the resource and its Location", async () => {
    const res = await api("/api/payments", { body: { amount: 86.1, currency: "GBP", metadata: { orderId: "A-1" } } });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/api/payments/${res.body.id}`);
    expect(res.body).toMatchObject({ object: "payment", amount: 86.1, currency: "GBP", status: "initiated", version: 1, metadata: { orderId: "A-1" }, refunds: [] });
  });

  it.each([
    [{ amount: 86.123, currency: "GBP" }, "amount"],
    [{ amount: 1.5, currency: "JPY" }, "amount"],
    [{ amount: 1.2345, currency: "KWD" }, "amount"],
    [{ amount: 1_000_001, currency: "GBP" }, "amount"],
    [{ amount: "10", currency: "GBP" }, "amount"],
    [{ amount: 10, currency: "GBP", colour: "red" }, "colour"],
    [{ amount: 10, currency: "GBP", metadata: { ["k".repeat(41)]: "v" } }, `metadata.${"k".repeat(41)}`],
    [{ amount: 10, currency: "GBP", metadata: { k: "v".repeat(501) } }, "metadata.k"],
    [{ amount: 10, currency: "GBP", metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, "v"])) }, "metadata"],
    // Control characters of every block: C0, DEL and C1 (U+0085 next line, U+009B a terminal's escape).
    [{ amount: 10, currency: "GBP", metadata: { k: "a\u001bb" } }, "metadata.k"],
    [{ amount: 10, currency: "GBP", metadata: { k: "a\u007fb" } }, "metadata.k"],
    [{ amount: 10, currency: "GBP", metadata: { k: "a\u0085b" } }, "metadata.k"],
    [{ amount: 10, currency: "GBP", metadata: { k: "a\u009b31m" } }, "metadata.k"],
  ])("refuses %j with an error on %s", async (body, field) => {
    const res = await api("/api/payments", { body });
    expect(problemOf(res)).toEqual({ status: 400, type: "application/problem+json", code: "validation_failed" });
    expect(Object.keys(res.body.errors)).toContain(field);
  });

  it.each([
    ['{"amount":10.009999999999999999,"currency":"GBP"}', "amount"],
    ['{"amount":999999.9999999999999,"currency":"GBP"}', "amount"],
    ['{"amount":1e400,"currency":"GBP"}', "amount"],
    ['{"amount":10,"currency":"GBP","metadata":{"a":"\\ud800"}}', "metadata.a"],
  ])("refuses %s, which a plain JSON parse would take as another request (rounded, or not Unicode), with an error on %s", async (body, field) => {
    const res = await api("/api/payments", { body });
    expect(problemOf(res)).toEqual({ status: 400, type: "application/problem+json", code: "validation_failed" });
    expect(Object.keys(res.body.errors)).toEqual([field]);
  });

  it("takes a number written with trailing zeros or an exponent, and text beyond the BMP, as sent", async () => {
    const res = await api("/api/payments", { body: '{"amount":8.610e1,"currency":"GBP","metadata":{"a":"\\ud83d\\udcb8 💸"}}' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ amount: 86.1, metadata: { a: "💸 💸" } });
  });

  it("accepts each currency's own precision", async () => {
    for (const [amount, currency] of [[100, "JPY"], [1.234, "KWD"], [0.01, "USD"]] as const)
      expect((await api("/api/payments", { body: { amount, currency } })).body).toMatchObject({ amount, currency });
  });

  it("takes the largest metadata its schema accepts, and answers an empty JSON body with the missing fields", async () => {
    // 50 keys of 40 characters, values of 500 CJK characters, each sent as a \uXXXX escape (~152 KB).
    const metadata = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${String(i).padStart(2, "0")}${"x".repeat(37)}`, "值".repeat(500)]));
    const escaped = JSON.stringify({ amount: 1, currency: "GBP", metadata }).replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    expect(escaped.length).toBeGreaterThan(150_000);
    const res = await api("/api/payments", { body: escaped });
    expect(res.status).toBe(201);
    expect(res.body.metadata).toEqual(metadata);
    const empty = await api("/api/payments", { method: "POST", body: "", headers: { "content-type": "application/json" } });
    expect(problemOf(empty)).toMatchObject({ status: 400, code: "validation_failed" });
    expect(Object.keys(empty.body.errors).sort()).toEqual(["amount", "currency"]);
    expect(empty.body.errors).toEqual({ amount: ["amount is required"], currency: ["currency is required"] });
    const mistyped = await api("/api/payments", { body: { amount: "1", currency: 5 } });
    expect(mistyped.body.errors).toEqual({ amount: ["amount must be a number"], currency: ["currency must be a string"] });
  });

  it("answers 413 to a body over 192 KiB, 415 to another content type, 400 to malformed JSON", async () => {
    const huge = await api("/api/payments", { body: JSON.stringify({ amount: 1, currency: "GBP", pad: "x".repeat(200_000) }) });
    expect(problemOf(huge)).toMatchObject({ status: 413, code: "payload_too_large" });
    const text = await api("/api/payments", { body: "amount=1", headers: { "content-type": "text/plain" } });
    expect(problemOf(text)).toMatchObject({ status: 415, code: "unsupported_media_type" });
    const malformed = await api("/api/payments", { body: '{"amount": 1,' });
    expect(problemOf(malformed)).toMatchObject({ status: 400, code: "malformed_json" });
  });

  it("answers 400 malformed_json to bytes that are not UTF-8 (never replaced: two different bodies would read the same)", async () => {
    const utf8 = (s: string) => [...new TextEncoder().encode(s)];
    // A stray byte, and a lone surrogate encoded as UTF-8 (its escaped form is refused as text too).
    for (const bad of [[0xff], [0xed, 0xa0, 0x80]]) {
      const body = Uint8Array.from([...utf8('{"amount": 1, "currency": "GBP", "metadata": {"a": "'), ...bad, ...utf8('"}}')]);
      const res = await api("/api/payments", { body, headers: { "idempotency-key": crypto.randomUUID() } });
      expect(problemOf(res)).toMatchObject({ status: 400, code: "malformed_json" });
      expect(res.body.detail).toBe("the body is not valid UTF-8");
    }
    expect((await api("/api/payments", { body: Uint8Array.from(utf8('{"amount": 1, "currency": "GBP", "metadata": {"a": "é"}}')) })).status).toBe(201);
  });

  it("answers 400 validation_failed to a key given twice in one object, at any depth, however it is escaped", async () => {
    const amount = await api("/api/payments", { body: '{"amount": 10, "currency": "GBP", "amount": 20}' });
    expect(problemOf(amount)).toMatchObject({ status: 400, code: "validation_failed" });
    expect(amount.body.errors).toEqual({ amount: ["amount is given more than once"] });
    const nested = await api("/api/payments", { body: '{"amount": 10, "currency": "GBP", "metadata": {"a": "1", "\\u0061" : "2"}}' });
    expect(nested.body.errors).toEqual({ a: ["a is given more than once"] });
    // The same key in two objects, a key's text as a value, quotes and braces inside strings: no key twice.
    const fine = await api("/api/payments", { body: '{"amount": 10, "currency": "GBP", "metadata": {"amount": "amount\\"{[", "currency": "}]"}}' });
    expect(fine.status).toBe(201);
    expect(duplicateKey('[{"a": 1}, {"a": 1}]')).toBeUndefined();
    expect(duplicateKey('{"a": {"b": 1}, "b": [{"a": 2}], "c": "\\"a\\":", "a": 3}')).toBe("a");
    // A backslash escaped just before a closing quote ends the string there.
    expect(duplicateKey('{"c": "a\\\\", "a": 1, "a": 2}')).toBe("a");
    expect(duplicateKey('{"a\\\\": 1, "a\\\\": 2}')).toBe("a\\");
    expect(duplicateKey('{"a\\\\": 1, "a": 2}')).toBeUndefined();
  });
});

describe("the platform failing a request", () => {
  it.each([
    ["overloaded", { overloaded: true, retryable: false }, "10"],
    ["reset", { retryable: true }, "1"],
  ] as const)("answers 503 service_unavailable with Retry-After when a payment's object is %s", async (what, flags, retryAfter) => {
    // A payment's object the platform cannot serve for now: its stub throws an error carrying the platform's flags.
    const thrown = Object.assign(new Error(`Durable Object ${what}`), flags);
    const unreachable = { getByName: () => ({ create: () => Promise.reject(thrown) }) } as unknown as typeof env.PAYMENTS;
    const res = await worker.fetch!(
      new Request("http://pay.test/api/payments", { method: "POST", headers: { authorization: `Bearer ${keys.merchantA}`, "content-type": "application/json" }, body: JSON.stringify({ amount: 1, currency: "GBP" }) }),
      { ...env, PAYMENTS: unreachable },
      createExecutionContext(),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe(retryAfter);
    expect(await res.json()).toMatchObject({ code: "service_unavailable" });
  });
});

describe("reading payments", () => {
  it("finds a payment by its id in upper case too (UUIDs are case-insensitive)", async () => {
    const payment = await createPayment({ amount: 3.21, currency: "GBP" });
    const res = await api(`/api/payments/${payment.id.toUpperCase()}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: payment.id, amount: 3.21 });
    expect((await api(`/api/payments/${payment.id.toUpperCase()}/events`)).body.events[0]).toMatchObject({ eventType: "PaymentInitiated" });
  });

  it("answers 404 to an id that is not a UUID, without touching Cosmos", async () => {
    await emulator.quiet();
    await emulator.resetCounters();
    for (const id of ["not-a-uuid", "..%2F..%2Fadmin", "7551548a-b366-4081-9330-ae19bfc5557", "%00"]) {
      const res = await api(`/api/payments/${id}`);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
    }
    expect(await emulator.counters()).toMatchObject({ query: 0, read: 0, sproc: 0 });
  });

  it("answers 404 to a payment that does not exist on every route, and stores nothing for the id asked", async () => {
    const key = crypto.randomUUID();
    const id = uuidFrom("payment", "merchant-a", key); // the id a create with this key will take
    const keyed = (k: string) => ({ "idempotency-key": k });
    for (const res of [
      await api(`/api/payments/${id}`),
      await api(`/api/payments/${id}?atVersion=1`),
      await api(`/api/payments/${id}/events`),
      await api(`/api/payments/${id}/refunds`),
      await api(`/api/payments/${id}/cancel`, { body: {}, headers: keyed("c-1") }),
      await api(`/api/payments/${id}/refunds`, { body: { amount: 1 }, headers: keyed("r-1") }),
    ])
      expect(problemOf(res)).toMatchObject({ status: 404, code: "payment_not_found" });
    // Its object holds no table at all: a guessed id leaves nothing behind.
    const tables = await runInDurableObject(env.PAYMENTS.getByName(id), (_: PaymentObject, state) => state.storage.sql.exec("SELECT name FROM sqlite_master").toArray());
    expect(tables).toEqual([]);
    // The id is still free for the create that takes it.
    const created = await createPayment({ amount: 12, currency: "GBP" }, { idempotencyKey: key });
    expect(created.id).toBe(id);
    expect((await waitForPayment(id, (p) => p.status === "completed")).amount).toBe(12);
  });

  it("serves the history in the stored shape, paged", async () => {
    const payment = await createPayment();
    const first = await api(`/api/payments/${payment.id}/events?limit=1`);
    expect(first.status).toBe(200);
    expect(first.body.events).toEqual([
      {
        id: `pay:${payment.id}:1`,
        stream: { id: `pay:${payment.id}`, version: 1 },
        eventType: "PaymentInitiated",
        eventData: { PaymentId: payment.id, Amount: 86.1, Currency: "GBP", MerchantId: "merchant-a", Timestamp: payment.initiatedAt },
        eventId: expect.stringMatching(uuidPattern),
        metadata: { correlationId: expect.any(String), causationId: expect.any(String) },
      },
    ]);
    expect(first.body.events[0]).not.toHaveProperty("_etag");
    // Once the stream has moved on, the first page points at the next one.
    await waitForPayment(payment.id, (p) => p.status === "completed");
    const paged = await api(`/api/payments/${payment.id}/events?limit=1`);
    expect(paged.body.nextFromVersion).toBe(2);
    const next = await api(`/api/payments/${payment.id}/events?fromVersion=2&limit=1`);
    expect(next.body.events.map((e: Json) => e.stream.version)).toEqual([2]);
    expect(next.body.nextFromVersion).toBe(3);
  });

  it("refuses unknown query parameters", async () => {
    const payment = await createPayment();
    expect((await api(`/api/payments/${payment.id}?verbose=1`)).status).toBe(400);
    expect((await api(`/api/payments/${payment.id}?atVersion=0`)).status).toBe(400);
    expect((await api(`/api/payments/${payment.id}?asOf=yesterday`)).status).toBe(400);
    const both = await api(`/api/payments/${payment.id}?atVersion=1&asOf=${encodeURIComponent(new Date().toISOString())}`);
    expect(problemOf(both)).toMatchObject({ status: 400, code: "validation_failed" });
    expect(both.body.errors).toEqual({ asOf: ["give atVersion or asOf, not both"] });
  });

  it("reads versions and limits written in decimal digits only, not coerced from other forms", async () => {
    const payment = await createPayment();
    expect((await api(`/api/payments/${payment.id}?atVersion=1`)).body.version).toBe(1);
    for (const query of ["atVersion=0x1", "atVersion=%201", "atVersion=1.", "atVersion=1e0", "atVersion=+1"])
      expect(await api(`/api/payments/${payment.id}?${query}`), query).toMatchObject({ status: 400, body: { errors: { atVersion: ["must be a whole number in decimal digits"] } } });
    expect((await api(`/api/payments/${payment.id}/events?fromVersion=0x1`)).status).toBe(400);
    expect((await api(`/api/payments?limit=1.0`)).status).toBe(400);
  });
});

describe("request ids", () => {
  it("echoes the caller's Request-Id, or makes one", async () => {
    expect((await api("/health", { headers: { "request-id": "req-123" } })).headers.get("request-id")).toBe("req-123");
    expect((await api("/health")).headers.get("request-id")).toMatch(uuidPattern);
  });
  it("puts it in problems", async () => {
    const res = await api("/api/payments/nope", { headers: { "request-id": "req-456" } });
    expect(res.body.requestId).toBe("req-456");
  });
});

describe("health and OpenAPI", () => {
  it("answers health when Cosmos is reachable", async () => {
    expect(await api("/health", { key: null })).toMatchObject({ status: 200, body: { status: "ok" } });
  });

  it("lets no cache store an answer: payments, tickets and problems alike", async () => {
    const payment = await createPayment({ amount: 13, currency: "GBP" });
    const answers = [
      await api(`/api/payments/${payment.id}`),
      await api(`/api/payments/${payment.id}/live-tickets`, { method: "POST" }),
      await api("/api/payments"),
      await api(`/api/payments/${payment.id}`, { key: keys.merchantB }),
      await api("/api/payments", { body: { amount: -1, currency: "GBP" } }),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 201, 200, 404, 400]);
    for (const a of answers) expect(a.headers.get("cache-control")).toBe("no-store");
  });

  it("serves an OpenAPI 3.1 document generated from the request schemas", async () => {
    const doc = await api("/openapi.json", { key: null });
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe("3.1.0");
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(["/api/payments", "/api/payment/create", "/api/payments/{id}", "/api/payments/{id}/events", "/api/payments/{id}/cancel", "/api/payments/{id}/refunds", "/admin/payments/{id}/redrive"]),
    );
    const { createPaymentBody } = await import("../../src/http/schemas.ts");
    const schema = doc.body.components.schemas.CreatePayment;
    // The document follows the schema that validates requests: its fields, requirements and strictness.
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(createPaymentBody.shape).sort());
    expect(schema.required.sort()).toEqual(["amount", "currency"]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.amount.exclusiveMinimum).toBe(0);
    // Patterns carry no flags: a metadata value's, read as a client would, takes text and refuses control characters.
    const text = new RegExp(schema.properties.metadata.additionalProperties.pattern);
    expect(text.test("order 1042, café 💸")).toBe(true);
    expect(["a\u0000b", "a\u007fb", "a\u0085b", "a\u009bb"].map((v) => text.test(v))).toEqual([false, false, false, false]);
    // Problems are problem+json bodies of the Problem schema; every merchant route names its rate limit's 429 and
    // Retry-After. (That each route documents every status it answers is checked by the fuzzer, test/http/fuzz.test.ts.)
    const create = doc.body.paths["/api/payments"].post.responses;
    expect(create["422"]).toEqual({
      description: "idempotency_key_reused, refund_exceeds_amount",
      content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
    });
    expect(Object.keys(create["201"].headers).sort()).toEqual(["Idempotent-Replayed", "Location"]);
    for (const [path, operations] of Object.entries(doc.body.paths as Record<string, Record<string, Json>>))
      for (const operation of Object.values(operations))
        if (path.startsWith("/api/")) expect(operation.responses["429"]?.headers, path).toHaveProperty("Retry-After");
  });
});

describe("authentication", () => {
  it("answers 401 without a key or with a wrong one", async () => {
    for (const key of [null, "sk_wrong"]) {
      const res = await api("/api/payments", { body: { amount: 1, currency: "GBP" }, key });
      expect(problemOf(res)).toEqual({ status: 401, type: "application/problem+json", code: "unauthorized" });
    }
    const basic = await api("/api/payments", { body: { amount: 1, currency: "GBP" }, headers: { authorization: "Basic abc" }, key: null });
    expect(basic.status).toBe(401);
    expect(basic.headers.get("www-authenticate")).toBe('Bearer realm="regis-pay"');
  });

  it("reads the scheme's name in any case (RFC 9110)", async () => {
    for (const scheme of ["bearer", "BEARER"])
      expect((await api("/api/payments?limit=1", { headers: { authorization: `${scheme} ${keys.merchantA}` }, key: null })).status).toBe(200);
  });

  it("accepts every key of a merchant, so keys can be rotated", async () => {
    const payment = await createPayment({ amount: 5, currency: "GBP" }, { key: keys.merchantARotated });
    expect((await api(`/api/payments/${payment.id}`, { key: keys.merchantA })).status).toBe(200);
  });

  it("hides a payment from every other merchant, on every route", async () => {
    const payment = await createPayment();
    const other = keys.merchantB;
    const routes = [
      api(`/api/payments/${payment.id}`, { key: other }),
      api(`/api/payments/${payment.id}?atVersion=1`, { key: other }),
      api(`/api/payments/${payment.id}/events`, { key: other }),
      api(`/api/payments/${payment.id}/refunds`, { key: other }),
      api(`/api/payments/${payment.id}/cancel`, { key: other, body: {} }),
      api(`/api/payments/${payment.id}/refunds`, { key: other, body: { amount: 1 } }),
    ];
    for (const res of await Promise.all(routes)) expect(problemOf(res)).toMatchObject({ status: 404, code: "payment_not_found" });
    expect((await api(`/api/payments/${payment.id}`)).body.status).not.toBe("cancelled");
  });

  it("never replays a merchant's keyed cancel or refund to another merchant using the same key", async () => {
    const other = keys.merchantB;
    const cancelled = await createPayment();
    const cancelKey = { "idempotency-key": crypto.randomUUID() };
    expect((await api(`/api/payments/${cancelled.id}/cancel`, { body: {}, headers: cancelKey })).status).toBe(200);
    const refunded = await createPayment();
    await waitForPayment(refunded.id, (p) => p.status === "completed");
    const refundKey = { "idempotency-key": crypto.randomUUID() };
    expect((await api(`/api/payments/${refunded.id}/refunds`, { body: { amount: 1 }, headers: refundKey })).status).toBe(202);
    const attempts = [
      api(`/api/payments/${cancelled.id}/cancel`, { key: other, body: {}, headers: cancelKey }),
      api(`/api/payments/${cancelled.id}/cancel`, { key: other, body: { reason: "another" }, headers: cancelKey }),
      api(`/api/payments/${refunded.id}/refunds`, { key: other, body: { amount: 1 }, headers: refundKey }),
      api(`/api/payments/${refunded.id}/refunds`, { key: other, body: { amount: 2 }, headers: refundKey }),
    ];
    for (const res of await Promise.all(attempts)) expect(problemOf(res)).toMatchObject({ status: 404, code: "payment_not_found" });
  });

  it("words every validation message itself, naming what is expected", async () => {
    const errorsOf = async (path: string, init: Parameters<typeof api>[1] = {}) => (await api(path, init)).body.errors;
    expect(await errorsOf("/api/payments?limit=0&status=done&createdFrom=yesterday")).toEqual({
      limit: ["must be at least 1"],
      status: ["must be one of initiated, created, settled, completed, failed, cancelled"],
      createdFrom: ["must be an ISO 8601 time with its offset (2026-01-31T12:00:00Z)"],
    });
    expect(await errorsOf("/api/payments?limit=101")).toEqual({ limit: ["must be at most 100"] });
    expect(await errorsOf("/api/payments", { body: { amount: 1, currency: "GBP", metadata: { "bad key": "v" } } })).toEqual({
      "metadata.bad key": ["metadata keys are 1-40 characters of A-Z a-z 0-9 _ . : -"],
    });
    expect(await errorsOf("/api/payments", { body: { amount: 1, currency: "GBP" }, headers: { "idempotency-key": "" } })).toEqual({
      "idempotency-key": ["Idempotency-Key cannot be empty"],
    });
  });

  it("answers 405 with Allow to a method a path is not served with, and 404 to a path no route serves", async () => {
    const payment = await createPayment();
    const allow = (res: { headers: Headers }) => res.headers.get("allow")?.split(", ").sort();
    const deleted = await api(`/api/payments/${payment.id}`, { method: "DELETE" });
    expect(problemOf(deleted)).toMatchObject({ status: 405, code: "method_not_allowed" });
    expect(allow(deleted)).toEqual(["GET", "HEAD"]);
    expect(allow(await api("/api/payments", { method: "PUT", body: {} }))).toEqual(["GET", "HEAD", "POST"]);
    expect(allow(await api(`/api/payments/${payment.id}/refunds`, { method: "DELETE" }))).toEqual(["GET", "HEAD", "POST"]);
    expect(problemOf(await api(`/api/payments/${payment.id}/nothing`, { method: "DELETE" }))).toMatchObject({ status: 404, code: "not_found" });
    // A route's path is matched as written: the dot of /openapi.json is a dot.
    expect(problemOf(await api("/openapi-json", { key: null }))).toMatchObject({ status: 404, code: "not_found" });
    expect(allow(await api("/openapi.json", { method: "POST", key: null, body: {} }))).toEqual(["GET", "HEAD"]);
    // The key is checked first: without one, 401 whatever the method.
    expect((await api(`/api/payments/${payment.id}`, { method: "DELETE", key: null })).status).toBe(401);
  });

  it("keeps operator routes for the admin key: a merchant's key is forbidden (403), any other key unauthorized (401)", async () => {
    const payment = await createPayment();
    expect(problemOf(await api(`/admin/payments/${payment.id}/redrive`, { method: "POST", key: keys.merchantA }))).toMatchObject({ status: 403, code: "forbidden" });
    expect(problemOf(await api(`/admin/payments/${payment.id}/redrive`, { method: "POST", key: "sk_not_a_key" }))).toMatchObject({ status: 401, code: "unauthorized" });
    expect((await api(`/admin/payments/${payment.id}/redrive`, { method: "POST", key: keys.admin })).status).toBe(202);
    expect((await api(`/api/payments/${payment.id}`, { key: keys.admin })).status).toBe(401);
    // Operators' bodies have the same size limit, checked after their key.
    const big = JSON.stringify({ limit: 1, pad: "x".repeat(200_000) });
    expect((await api("/admin/redrive-stalled", { body: big, key: keys.merchantA })).status).toBe(403);
    expect(problemOf(await api("/admin/redrive-stalled", { body: big, key: keys.admin }))).toMatchObject({ status: 413, code: "payload_too_large" });
  });
});

describe("idempotency", () => {
  it("replays the original status and body for a retry with the same key and body", async () => {
    const key = crypto.randomUUID();
    const body = { amount: 12.5, currency: "EUR" };
    const first = await api("/api/payments", { body, headers: { "idempotency-key": key } });
    const again = await api("/api/payments", { body, headers: { "idempotency-key": key } });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  it("answers 422 for the same key with a different body", async () => {
    const key = crypto.randomUUID();
    await api("/api/payments", { body: { amount: 1, currency: "GBP" }, headers: { "idempotency-key": key } });
    const res = await api("/api/payments", { body: { amount: 2, currency: "GBP" }, headers: { "idempotency-key": key } });
    expect(problemOf(res)).toMatchObject({ status: 422, code: "idempotency_key_reused" });
  });

  it("shares one key namespace per merchant across both create routes, and keeps merchants apart", async () => {
    const key = crypto.randomUUID();
    const legacy = await api("/api/payment/create", { body: { amount: 3, currency: "USD" }, headers: { "idempotency-key": key } });
    const modern = await api("/api/payments", { body: { amount: 3, currency: "USD" }, headers: { "idempotency-key": key } });
    expect(modern.body.id).toBe(legacy.body.paymentId);
    const otherMerchant = await api("/api/payments", { body: { amount: 3, currency: "USD" }, headers: { "idempotency-key": key }, key: keys.merchantB });
    expect(otherMerchant.status).toBe(201);
    expect(otherMerchant.body.id).not.toBe(legacy.body.paymentId);
  });

  it("creates exactly one payment for 50 concurrent requests with one key", async () => {
    const key = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 50 }, () => api("/api/payments", { body: { amount: 7, currency: "GBP" }, headers: { "idempotency-key": key } })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    const created = results.filter((r) => r.status === 201);
    expect(new Set(created.map((r) => r.body.id)).size).toBe(1);
    expect(created.filter((r) => r.headers.get("idempotent-replayed") !== "true")).toHaveLength(1);
    const history = await api(`/api/payments/${created[0]!.body.id}/events`);
    expect(history.body.events.filter((e: Json) => e.eventType === "PaymentInitiated")).toHaveLength(1);
  });

  it("refuses a key longer than 255 characters", async () => {
    const res = await api("/api/payments", { body: { amount: 1, currency: "GBP" }, headers: { "idempotency-key": "k".repeat(256) } });
    expect(res.status).toBe(400);
    expect(Object.keys(res.body.errors)).toContain("idempotency-key");
  });
});
