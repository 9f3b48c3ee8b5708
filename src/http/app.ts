// The HTTP API: request ids, limits, auth, the payments and admin routes, OpenAPI, and one error handler.
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Config } from "../config.ts";
import type { Caller } from "../durable/paymentObject.ts";
import { log } from "../core/log.ts";
import { parsedExactly } from "../payment/money.ts";
import { services } from "../wiring.ts";
import { admin } from "./admin.ts";
import { bearer, isAdmin, merchantOf } from "./auth.ts";
import { live } from "./live.ts";
import { payments } from "./payments.ts";
import { problem, rateLimited, thrownProblem } from "./problems.ts";
import { fieldErrors } from "./reply.ts";
import { problemSchema } from "./schemas.ts";

export type AppEnv = { Bindings: Env; Variables: { requestId: string; config: Config; caller: Caller } };

/**
 * Room for the largest body the schemas accept: metadata of 50 keys of 40 characters and values of 500, counted in
 * characters, which JSON may send as six-byte `\uXXXX` escapes (~152 KB).
 */
const maxBodyBytes = 192 * 1024;
const limitBody = bodyLimit({ maxSize: maxBodyBytes, onError: (c) => problem(c, "payload_too_large", { detail: `at most ${maxBodyBytes} bytes` }) });

export const app = new OpenAPIHono<AppEnv>({
  // Invalid ids answer 404 (never reaching an object or Cosmos); everything else is a 400 with errors by field.
  defaultHook: (result, c) => {
    if (result.success) return;
    if (result.target === "param") return problem(c, "payment_not_found", { detail: "no such payment" });
    return problem(c, "validation_failed", { errors: fieldErrors(result.error) });
  },
});

app.use("*", async (c, next) => {
  const given = c.req.header("request-id");
  const requestId = given && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
  c.set("requestId", requestId);
  const started = Date.now();
  try {
    await next();
  } finally {
    c.header("request-id", requestId);
    // Payment data, tickets and problems are never stored by a cache (the browser's included).
    if (!c.res.headers.has("cache-control")) c.header("cache-control", "no-store");
    log("info", "request", { requestId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Date.now() - started });
  }
});

/** Liveness: the Worker answers, touching nothing (also the benchmark's no-op baseline). */
app.get("/livez", (c) => c.text("ok"));

/**
 * Readiness: 200 only when Cosmos answers. A probe needs no key, so an answer is reused for HEALTH_CACHE_MS after it
 * came (by every probe of this isolate): probes cannot drive Cosmos's requests. A check in flight is not shared: its
 * request's end could cancel it under the others.
 */
const checked = new WeakMap<object, { at: number; ok: boolean }>();
app.get("/health", async (c) => {
  const { store, config } = services(c.env);
  let health = checked.get(store);
  if (!health || Date.now() - health.at >= config.HEALTH_CACHE_MS) {
    const ok = await store.ping().then(
      () => true,
      (e: unknown) => (log("error", "health check failed", { requestId: c.get("requestId"), error: String(e) }), false),
    );
    checked.set(store, (health = { at: Date.now(), ok }));
  }
  return health.ok ? c.json({ status: "ok" }) : c.json({ status: "unavailable" }, 503);
});

app.doc31("/openapi.json", {
  openapi: "3.1.0",
  info: { title: "Regis Pay on the edge", version: "1.0.0", description: "Event-sourced payments on Cloudflare Workers and Azure Cosmos DB" },
});
app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
app.openAPIRegistry.register("Problem", problemSchema);

const requestGuards: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set("config", services(c.env).config);
  if (c.req.method === "POST" || c.req.method === "PUT" || c.req.method === "PATCH") {
    const type = c.req.header("content-type");
    const hasBody = type !== undefined || Number(c.req.header("content-length") ?? 0) > 0;
    if (hasBody && !/^application\/json(\s*;.*)?$/i.test(type ?? "")) return problem(c, "unsupported_media_type");
    // Any parameters are JSON still (`application/json ; charset=utf-8`, `application/json;`), but the route validators
    // accept only `type; name=value` lists (the pattern below is theirs, @hono/zod-openapi's): they see plain JSON,
    // which the body is read as in any case (UTF-8).
    if (type !== undefined && !/^application\/json(;\s*[a-zA-Z0-9-]+=[^;]+)*$/i.test(type)) {
      const headers = new Headers(c.req.raw.headers);
      headers.set("content-type", "application/json");
      c.req.raw = new Request(c.req.raw, { headers });
    }
  }
  await next();
};

/**
 * The JSON body, parsed once for the validators. An empty one is no body (`{}`): many clients send the content type on
 * every request. Bytes that are not UTF-8 are malformed JSON (RFC 8259 §8.1), never replaced: two different bodies
 * would read the same. A "__proto__" key, which JSON.parse keeps as an own property and zod then drops without a word,
 * is refused; so are a key given twice in one object (parsers disagree on which one counts; I-JSON, RFC 7493, forbids
 * it) and a number with more digits than it can carry (it would be taken rounded). One that is not JSON is left to the
 * validators, which answer `malformed_json`.
 */
const jsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "POST" && c.req.header("content-type") !== undefined) {
    const bytes = await c.req.raw.arrayBuffer(); // outside the try: a body over the limit throws for bodyLimit to answer
    let sent: string;
    try {
      sent = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch {
      return problem(c, "malformed_json", { detail: "the body is not valid UTF-8" });
    }
    const text = sent.trim() === "" ? "{}" : sent;
    const inexact: string[] = [];
    let body: unknown;
    try {
      // The reviver sees each number's literal (ES2025's JSON.parse source text access).
      body = JSON.parse(text, (key, value: unknown, context?: { source?: string }) => {
        if (typeof value === "number" && context?.source !== undefined && !parsedExactly(context.source, value)) inexact.push(key);
        return value;
      });
    } catch {
      body = undefined; // not JSON: the validators answer malformed_json
    }
    // The validators read the body through Hono's cache (of promises, though typed as values).
    Object.assign(c.req.bodyCache, { text: Promise.resolve(text) });
    if (hasProtoKey(body)) return problem(c, "validation_failed", { errors: { ["__proto__"]: ["this key is not allowed"] } });
    const twice = body !== undefined ? duplicateKey(text) : undefined;
    if (twice !== undefined) return problem(c, "validation_failed", { errors: { [twice]: [`${twice} is given more than once`] } });
    if (inexact.length > 0)
      return problem(c, "validation_failed", { errors: Object.fromEntries(inexact.map((key) => [key, [`${key} has more digits than a number carries exactly`]])) });
  }
  await next();
};

/** The first key given twice in one object of a well-formed JSON text (a key is a string followed by a colon). */
export function duplicateKey(text: string): string | undefined {
  const colon = /\s*:/y;
  const objects: (Set<string> | null)[] = []; // the keys of each open object; null for an array
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "{" || ch === "[") objects.push(ch === "{" ? new Set() : null);
    else if (ch === "}" || ch === "]") objects.pop();
    else if (ch === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const keys = objects.at(-1);
      colon.lastIndex = end + 1;
      if (keys && colon.test(text)) {
        const key = JSON.parse(text.slice(i, end + 1)) as string; // escapes read: "a" and "\u0061" are one key
        if (keys.has(key)) return key;
        keys.add(key);
      }
      i = end;
    }
  }
  return undefined;
}

/** Whether a parsed JSON value holds a "__proto__" key at any depth (iteratively: bodies may be deeply nested). */
function hasProtoKey(value: unknown) {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== "object") continue;
    if (!Array.isArray(v) && Object.hasOwn(v, "__proto__")) return true;
    stack.push(...Object.values(v));
  }
  return false;
}
// Checked in this order: the content type, the size, the key, then the body (which only a known caller gets read).
// Operators' bodies are size-checked after their key: the 401 comes first there.
app.use("/api/*", requestGuards, limitBody);
app.use("/admin/*", requestGuards);

app.use("/api/*", async (c, next) => {
  // The live WebSocket carries a signed ticket instead of a key (browsers cannot set headers on WebSockets).
  if (c.req.method === "GET" && /^\/api\/payments\/[^/]+\/live$/.test(c.req.path)) return next();
  const merchantId = await merchantOf(c.get("config"), bearer(c.req.header("authorization")));
  if (!merchantId) return problem(c, "unauthorized");
  const limited = await rateLimited(c, merchantId);
  if (limited) return limited;
  c.set("caller", { merchantId, requestId: c.get("requestId") });
  await next();
});

app.use("/admin/*", async (c, next) => {
  const key = bearer(c.req.header("authorization"));
  // A merchant's key is a key, without an operator's permission (403, as Stripe answers a restricted key); any other is none.
  if (!(await isAdmin(c.get("config"), key))) return problem(c, (await merchantOf(c.get("config"), key)) ? "forbidden" : "unauthorized");
  await next();
});
app.use("/admin/*", limitBody);

app.use("/api/*", jsonBody);
app.use("/admin/*", jsonBody);

app.route("/api", payments);
app.route("/api", live);
app.route("/admin", admin);

/** Each path the routes serve (a pattern: `:id` is one segment), with the methods served there; HEAD with GET. */
let served: Map<string, { pattern: RegExp; methods: Set<string> }> | undefined;
function methodsServed(path: string) {
  if (!served) {
    served = new Map();
    for (const r of app.routes.filter((r) => r.method !== "ALL")) {
      const pattern = new RegExp(`^${r.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+")}$`);
      const route = served.get(r.path) ?? { pattern, methods: new Set<string>() };
      route.methods.add(r.method);
      if (r.method === "GET") route.methods.add("HEAD");
      served.set(r.path, route);
    }
  }
  return [...new Set([...served.values()].filter((s) => s.pattern.test(path)).flatMap((s) => [...s.methods]))];
}

// A path a route serves, asked with another method: 405 naming the methods (RFC 9110 §15.5.6); any other: 404.
app.notFound((c) => {
  const allowed = methodsServed(c.req.path);
  if (allowed.length === 0) return problem(c, "not_found", { detail: `no route ${c.req.method} ${c.req.path}` });
  const res = problem(c, "method_not_allowed", { detail: `${c.req.path} answers ${allowed.join(", ")}` });
  res.headers.set("allow", allowed.join(", "));
  return res;
});

app.onError((err, c) => {
  // Hono's validators answer with exceptions: a body that is not JSON, or not declared as JSON.
  if (err instanceof HTTPException && err.status === 400) return problem(c, "malformed_json", { detail: "the body is not valid JSON" });
  if (err instanceof HTTPException && err.status === 415) return problem(c, "unsupported_media_type");
  const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const { code, ...extras } = thrownProblem(err);
  if (code === "internal_error") log("error", "unhandled error", { requestId: c.get("requestId"), error });
  else log("warn", code === "store_unavailable" ? "event store unavailable" : "platform unavailable", { requestId: c.get("requestId"), error });
  return problem(c, code, extras);
});
