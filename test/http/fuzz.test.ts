// Property-based fuzzing of every route (fast-check): hostile requests get the 4xx problem+json the contract names
// (never a 5xx), and a refused request writes nothing to Cosmos. A failure prints the seed and path that replay it:
// pass them to fc.assert (`{ seed, path }`).
import { exports } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { api, emulator, waitForPayment, type Json } from "../helpers.ts";
import { keys } from "../setup/constants.ts";
import { controlChars, invalidRequests, requests, strayRequests, utf8, type Body, type Case, type Fixtures, type Route } from "./fuzz-arbitraries.ts";

const runs = 2000;
/** Requests in flight at once: the runtime is single-threaded, but a few overlap their waits on objects and bindings. */
const batch = 8;
const timeout = 180_000;

type Request = Pick<Case, "method" | "path" | "headers"> & { body?: Body | undefined };
type Answer = { status: number; headers: Headers; text: string };

/** A body of unknown length (no Content-Length), as a client streaming it sends it. */
const streamOf = (bytes: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes.slice());
      controller.close();
    },
  });

async function send(r: Request): Promise<Answer> {
  const headers = new Headers();
  for (const [name, value] of r.headers) headers.append(name, value);
  const body = r.body && (r.body.streamed ? streamOf(r.body.bytes) : r.body.bytes);
  const res = await exports.default.fetch(`http://pay.test${r.path}`, { method: r.method, headers, body });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const requestIdPattern = /^[\w.:-]{1,128}$/;
const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort().join();

/** What every answer must be: no 5xx, a request id, problem+json for errors, JSON for successes, no prototype pollution. */
function checkAnswer(r: Request, res: Answer) {
  const where = `${res.status} ${res.headers.get("content-type")} ${res.text.slice(0, 300)}`;
  expect(res.status, `never a 5xx: ${where}`).toBeLessThan(500);
  const requestId = res.headers.get("request-id");
  expect(requestId, "a request id").toMatch(requestIdPattern);
  const sent = r.headers.find(([name]) => name === "request-id")?.[1]?.trim();
  if (sent !== undefined && requestIdPattern.test(sent)) expect(requestId, "the client's request id, echoed").toBe(sent);
  if (res.status >= 400) {
    expect(res.headers.get("content-type"), where).toBe("application/problem+json");
    if (r.method !== "HEAD") {
      const problem = JSON.parse(res.text) as Json;
      expect(problem, where).toMatchObject({ type: expect.any(String), title: expect.any(String), status: res.status, code: expect.stringMatching(/^[a-z][a-z_]*$/), requestId });
      for (const messages of Object.values((problem.errors ?? {}) as Json)) expect(messages, where).toEqual(expect.arrayContaining([expect.any(String)]));
    }
  } else if (r.method !== "HEAD") {
    expect(res.headers.get("content-type"), where).toMatch(/^application\/json/);
    JSON.parse(res.text);
  }
  expect(Object.getOwnPropertyNames(Object.prototype).sort().join(), "Object.prototype untouched").toBe(prototypeNames);
  expect(({} as Json).polluted, "Object.prototype untouched").toBeUndefined();
}

/** The answer is one the contract allows for this request, with errors on one of the fields at fault. */
function checkOutcome(c: Case, res: Answer) {
  const body = c.method === "HEAD" || res.text === "" ? null : (JSON.parse(res.text) as Json);
  const code = res.status < 400 ? "ok" : body?.code;
  const match = c.outcomes.find((o) => o.status === res.status && (c.method === "HEAD" || o.code === code));
  const allowed = c.outcomes.map((o) => `${o.status} ${o.code}${o.fields ? ` on ${JSON.stringify(o.fields)}` : ""}`).join(" or ");
  expect(match, `expected ${allowed}, got ${res.status} ${res.text.slice(0, 300)}`).toBeDefined();
  if (match?.fields && body) {
    const fields = Object.keys((body.errors ?? {}) as Json);
    expect(match.fields.some((f) => fields.includes(f)), `errors on ${JSON.stringify(match.fields)}, got ${JSON.stringify(fields)}`).toBe(true);
  }
}

/** Checks each request of a batch with `check`, naming the request that fails. */
function each(cases: Case[], answers: Answer[], check: (c: Case, res: Answer) => void) {
  cases.forEach((c, i) => {
    try {
      check(c, answers[i]!);
    } catch (e) {
      throw new Error(`request ${i + 1} of the batch, ${fc.stringify(c)}: ${(e as Error).message}`, { cause: e });
    }
  });
}

async function nothingWritten(suspects: Case[] = []) {
  const { sproc, write } = await emulator.counters();
  const message = `refused requests wrote to Cosmos${suspects.length > 0 ? `; among ${suspects.map((c) => fc.stringify(c)).join(", ")}` : ""}`;
  expect({ sproc, write }, message).toEqual({ sproc: 0, write: 0 });
}

/**
 * Zeroes the counters once Cosmos sees no writes for a moment: payments created before (by another file, or by a
 * request wrongly accepted) may still be settling. Counters already at zero since the last reset mean it is quiet.
 */
async function quiet() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { sproc, write } = await emulator.counters();
    await emulator.resetCounters();
    if (sproc === 0 && write === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new Error("Cosmos kept being written to: cannot check that refused requests write nothing");
}

let fx: Fixtures;
/** The OpenAPI document the Worker serves: every status a route answers must be in it. */
let doc: Json;

/**
 * The statuses the OpenAPI document gives a route ("POST /api/payments/{id}/cancel"), for a request that reaches it
 * (its method, HEAD for a GET, and a path of its shape); null for any other request, or a route it does not describe
 * (health, the document itself).
 */
function documented(route: string, r: Request): string[] | null {
  const [method, template] = route.split(" ") as [string, string];
  if (r.method !== method && !(r.method === "HEAD" && method === "GET")) return null;
  if (!new RegExp(`^${template.replaceAll(".", "\\.").replace("{id}", "[^/?#]+")}(\\?.*)?$`).test(r.path)) return null;
  const responses = doc.paths[template]?.[method.toLowerCase()]?.responses as Json | undefined;
  return responses ? Object.keys(responses) : null;
}

beforeAll(async () => {
  const reusedKey = "fuzz-fixture-1";
  const reusedBody = { amount: 10, currency: "GBP" as const, metadata: { orderId: "fuzz" } };
  const own = await api("/api/payments", { body: reusedBody, headers: { "idempotency-key": reusedKey } });
  const foreign = await api("/api/payments", { body: { amount: 10, currency: "GBP" }, key: keys.merchantB });
  expect([own.status, foreign.status]).toEqual([201, 201]);
  const ownDone = await waitForPayment(own.body.id, (p) => p.status === "completed");
  const foreignDone = await waitForPayment(foreign.body.id, (p) => p.status === "completed", { key: keys.merchantB });
  const fixture = (p: typeof ownDone) => ({ id: p.id, amount: p.amount, version: p.version, initiatedAt: p.initiatedAt });
  // Payments that do not exist: a few fixed ids (their objects stay loaded), now and then a fresh one.
  const absent = ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "F022C0DE-0000-4000-8000-0000000000AB", "f022c0de-0000-4000-8000-000000000001", "f022c0de-0000-8000-b000-000000000002"];
  fx = {
    own: fixture(ownDone),
    foreign: fixture(foreignDone),
    reusedKey,
    reusedBody,
    missing: fc.oneof({ weight: 30, arbitrary: fc.constantFrom(...absent) }, { weight: 1, arbitrary: fc.uuid() }),
  };
  doc = (await api("/openapi.json", { key: null })).body;
  await quiet();
}, 60_000);

/**
 * Sends `runs` requests the API must refuse, `batch` at a time: each gets an answer the contract allows, and Cosmos
 * is not written (checked after each batch that reaches a payment object, and after the run).
 */
async function refuses(cases: () => fc.Arbitrary<Case>, seed: number, route?: string) {
  await quiet();
  await fc.assert(
    fc.asyncProperty(fc.array(cases(), { minLength: batch, maxLength: batch }), async (batchOf) => {
      const answers = await Promise.all(batchOf.map(send));
      each(batchOf, answers, (c, res) => {
        checkAnswer(c, res);
        checkOutcome(c, res);
        const statuses = route ? documented(route, c) : null;
        if (statuses) expect(statuses, `${res.status} is in the OpenAPI document's answers of ${route}`).toContain(String(res.status));
      });
      const suspects = batchOf.filter((c) => c.object);
      if (suspects.length > 0) await nothingWritten(suspects);
    }),
    { numRuns: Math.ceil(runs / batch), seed },
  );
  await nothingWritten();
}

const routes: [Route, string][] = [
  ["create", "POST /api/payments"],
  ["legacyCreate", "POST /api/payment/create"],
  ["get", "GET /api/payments/{id}"],
  ["events", "GET /api/payments/{id}/events"],
  ["cancel", "POST /api/payments/{id}/cancel"],
  ["refund", "POST /api/payments/{id}/refunds"],
  ["refunds", "GET /api/payments/{id}/refunds"],
  ["redrive", "POST /admin/payments/{id}/redrive"],
  ["health", "GET /health"],
  ["openapi", "GET /openapi.json"],
];

describe("hostile requests to each route", () => {
  routes.forEach(([route, name], i) => {
    const seed = 0x5eed + i;
    it(`${name}: ${runs} are refused with the contract's 4xx problem+json, writing nothing (seed ${seed})`, () => refuses(() => invalidRequests(route, fx), seed, name), timeout);
  });

  it(`paths and methods of no route: ${runs} get a 4xx problem+json (seed ${0x5eed + 99})`, () => refuses(() => strayRequests(fx), 0x5eed + 99), timeout);
});

describe("the OpenAPI document", () => {
  it("describes every route the Worker serves, the live WebSocket included, each with 500 among its answers", () => {
    const operations = Object.entries(doc.paths as Record<string, Json>).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => [`${method.toUpperCase()} ${path}`, op as Json] as const));
    expect(operations.map(([name]) => name)).toEqual(expect.arrayContaining([...routes.filter(([r]) => r !== "health" && r !== "openapi").map(([, name]) => name), "GET /api/payments/{id}/live", "POST /api/payments/{id}/live-tickets", "POST /admin/redrive-stalled"]));
    expect(Object.keys(doc.paths["/api/payments/{id}/live"].get.responses)).toEqual(["101", "401", "404", "426", "429", "500", "503"]);
    for (const [name, op] of operations) expect(Object.keys(op.responses), name).toContain("500");
  });
});

describe("inputs the fuzzer found", () => {
  beforeAll(quiet);
  const merchant: [string, string] = ["authorization", `Bearer ${keys.merchantA}`];
  const json: [string, string] = ["content-type", "application/json"];
  const refused = async (r: Request, status: number, code: string) => {
    const c: Case = { body: undefined, ...r, outcomes: [{ status, code }], object: false, defects: [] };
    const res = await send(c);
    checkAnswer(c, res);
    checkOutcome(c, res);
    await nothingWritten();
  };

  it.each(["application/json;", "application/json ; charset=utf-8", "application/json; foo", "application/json\t;x=y"])("a body typed %j is read as JSON", async (type) => {
    const c = { method: "POST", path: "/api/payments", headers: [merchant, ["content-type", type]] as [string, string][], body: { bytes: utf8('{"amount":1,"currency":"GBP","x":1}'), streamed: false } };
    const res = await send(c);
    checkAnswer(c, res);
    expect(res.status, res.text).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ code: "validation_failed", errors: { x: expect.any(Array) } });
  });

  it("a streamed body without a content type is refused with 415", () =>
    refused({ method: "POST", path: `/api/payments/${fx.own.id}/cancel`, headers: [merchant], body: { bytes: utf8('{"reason":1}'), streamed: true } }, 415, "unsupported_media_type"));

  it.each(["constructor", "__proto__", "toString"])("an unknown body field named %s is refused with 400", (field) =>
    refused({ method: "POST", path: "/api/payments", headers: [merchant, json], body: { bytes: utf8(`{"amount":1,"currency":"GBP",${JSON.stringify(field)}:1}`), streamed: false } }, 400, "validation_failed"));

  it.each(["__proto__", "constructor", "hasOwnProperty"])("an unknown query parameter named %s is refused with 400", (name) =>
    refused({ method: "GET", path: `/api/payments/${fx.own.id}?${name}=1`, headers: [merchant] }, 400, "validation_failed"));

  it("metadata under __proto__ that is not a string is refused with 400, and no payment is written", () =>
    refused({ method: "POST", path: "/api/payments", headers: [merchant, json], body: { bytes: utf8('{"amount":1,"currency":"GBP","metadata":{"__proto__":{"polluted":"yes"}}}'), streamed: false } }, 400, "validation_failed"));
});

// Last: valid requests write, and their payments go on settling in the background.
describe("requests valid or not, to any route", () => {
  it(`never answer a 5xx, and answer errors as problem+json (seed ${0x5eed + 100})`, async () => {
    // Creates, cancels and refunds draw their Idempotency-Key from a few, so valid ones add a handful of payments and refunds.
    const idempotencyKeys = fc.constantFrom("fuzz-any-1", "fuzz-any-2", "fuzz-any-3");
    const any = fc.constantFrom(...routes.map(([r]) => r)).chain((route) => requests(route, fx, { defects: { min: 0, max: 2 }, idempotencyKeys }));
    await fc.assert(
      fc.asyncProperty(fc.array(any, { minLength: batch, maxLength: batch }), async (batchOf) => each(batchOf, await Promise.all(batchOf.map(send)), checkAnswer)),
      { numRuns: Math.ceil(1000 / batch), seed: 0x5eed + 100 },
    );
  }, timeout);

  it(`keep exactly the metadata a payment is created with, prototype-named keys included (seed ${0x5eed + 101})`, async () => {
    // "__proto__" itself is refused with 400 (see "inputs the fuzzer found"); its relatives are ordinary keys.
    const key = fc.oneof(fc.constantFrom("constructor", "prototype", "toString", "valueOf"), fc.stringMatching(/^[A-Za-z0-9_.:-]{1,40}$/).filter((k) => k !== "__proto__"));
    const value = fc.string({ maxLength: 20 }).filter((v) => !controlChars.test(v));
    const entries = fc.uniqueArray(fc.tuple(key, value), { minLength: 1, maxLength: 5, selector: ([k]) => k });
    await fc.assert(
      fc.asyncProperty(entries, async (metadata) => {
        const text = `{"amount":1,"currency":"GBP","metadata":{${metadata.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}}`;
        const res = await api("/api/payments", { body: text });
        expect(res.status, res.text).toBe(201);
        expect(Object.entries(res.body.metadata as Json).sort(), "the metadata sent").toEqual([...metadata].sort());
      }),
      { numRuns: 25, seed: 0x5eed + 101 },
    );
  }, timeout);
});
