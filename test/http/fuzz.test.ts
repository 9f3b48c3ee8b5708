import { describe, it } from "vitest";
import { exports } from "cloudflare:workers";
import { api, createPayment, emulator } from "../helpers.ts";
import { keys } from "../setup/constants.ts";
import { z } from "zod";

const raw = async (path: string, init: RequestInit) => {
  try { const r = await exports.default.fetch(`http://pay.test${path}`, init); return `${r.status} ${r.headers.get("content-type")} ${(await r.text()).slice(0, 150)}`; } catch (e) { return `THREW ${e}`; }
};
const stream = (s: string) => new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(s)); c.close(); } });

describe("probe", () => {
  it("probes", async () => {
    const p = await createPayment();
    const auth = { authorization: `Bearer ${keys.merchantA}` };
    console.log("rs no ct create", await raw(`/api/payments`, { method: "POST", headers: auth, body: stream('{"amount":1,"currency":"GBP"}') }));
    console.log("rs no ct cancel", await raw(`/api/payments/${p.id}/cancel`, { method: "POST", headers: auth, body: stream('{"x":1}') }));
    console.log("rs no ct legacy", await raw(`/api/payment/create`, { method: "POST", headers: auth, body: stream('{"x":1}') }));
    console.log("ct empty string", await raw(`/api/payments`, { method: "POST", headers: { ...auth, "content-type": "" }, body: '{"x":1}' }));
    console.log("query proto", await raw(`/api/payments/${p.id}?__proto__=1`, { headers: auth }));
    console.log("query constructor", await raw(`/api/payments/${p.id}/events?constructor=1`, { headers: auth }));
    console.log("body toString", await raw(`/api/payments/${p.id}/refunds`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: '{"amount":1,"toString":1}' }));
    console.log("health post", await raw(`/health`, { method: "POST", body: "x" }));
    console.log("health/", await raw(`/health/`, {}));
    console.log("heal%74h", await raw(`/heal%74h`, {}));
    console.log("//api//payments", await raw(`//api//payments/${p.id}`, { headers: auth }));
    console.log("API", await raw(`/API/payments/${p.id}`, { headers: auth }));
    console.log("%61pi", await raw(`/%61pi/payments/${p.id}`, { headers: auth }));
    console.log("%61pi no auth", await raw(`/%61pi/payments/${p.id}`, { }));
    console.log("%61dmin no auth", await raw(`/%61dmin/payments/${p.id}/redrive`, { method: "POST" }));
    console.log("id %2F", await raw(`/api/payments/${p.id}%2F`, { headers: auth }));
    console.log("latin header", await raw(`/health`, { headers: { "x-a": "é" } }));
    console.log("latin header2", await raw(`/health`, { headers: { "x-a": "ü" } }));
    for (const m of ["PURGE", "COPY", "LOCK", "MKCOL", "MOVE", "PROPPATCH", "SEARCH", "UNLOCK", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "QUERY", "get", "Post"]) console.log("m", m, await raw(`/api/payments`, { method: m, headers: auth }));
    console.log("zod", JSON.stringify(z.record(z.string(), z.string()).parse(JSON.parse('{"__proto__":"x","constructor":"y"}'))));
    let t = Date.now();
    for (let i = 0; i < 100; i++) await raw(`/openapi.json`, {});
    console.log("100 openapi", Date.now() - t);
    t = Date.now();
    for (let i = 0; i < 100; i++) await raw(`/health`, {});
    console.log("100 health", Date.now() - t);
    t = Date.now();
    for (let i = 0; i < 1000; i++) await raw(`/nope/${i}`, {});
    console.log("1000 notfound", Date.now() - t);
    t = Date.now();
    for (let i = 0; i < 1000; i++) await raw(`/api/payments`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: '{"amount":-1,"currency":"GBP"}' });
    console.log("1000 create 400", Date.now() - t);
    t = Date.now();
    for (let i = 0; i < 1000; i++) await emulator.counters();
    console.log("1000 counters", Date.now() - t);
  }, 120000);
});
