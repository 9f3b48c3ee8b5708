// The platform floor measured by `npm run bench` beside our create: Workers of a few lines with the shape of ours and
// none of our code (no auth, validation, Cosmos SDK, decisions). The benchmark's own echo server stands in for Cosmos
// and the provider.
// - /create: a new SQLite-backed Durable Object writes an outbox row and sets an alarm, makes one outgoing request,
//   then records the outcome and moves the alarm.
// - /pipeline: the same create, and after its reply the shape of a payment's lifecycle: an event is sent to a queue;
//   the consumer records the batch in D1 and hands each event to its object, which makes two requests (a provider's
//   step and an append), writes, and sends the next event; three steps, then a last delivery that only confirms.
import { DurableObject } from "cloudflare:workers";

const steps = 3;
let listReady;

export class Floor extends DurableObject {
  /** `name`: the object's own, for the lifecycle's events (with /pipeline). */
  async create(echoUrl, name = null) {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, state TEXT NOT NULL)");
    sql.exec("INSERT OR REPLACE INTO outbox VALUES (1, 'pending')");
    await this.ctx.storage.setAlarm(Date.now() + 60_000);
    await (await fetch(echoUrl, { method: "POST", body: "{}" })).text();
    sql.exec("UPDATE outbox SET state = 'committed'");
    await this.ctx.storage.setAlarm(Date.now() + 30_000);
    // After the reply, as ours relays: a macrotask, then the send.
    if (name !== null) setTimeout(() => void this.env.EVENTS.send({ name, step: 1, echoUrl }), 0);
    return true;
  }

  /** A lifecycle step: a provider's request, an append, a write, and the next event; past the last, a confirmation only. */
  async step(name, step, echoUrl) {
    const sql = this.ctx.storage.sql;
    if (step > steps) return void sql.exec("UPDATE outbox SET state = 'delivered'");
    await (await fetch(echoUrl, { method: "POST", body: "{}" })).text();
    await (await fetch(echoUrl, { method: "POST", body: "{}" })).text();
    sql.exec("UPDATE outbox SET state = ?", `step ${step}`);
    await this.env.EVENTS.send({ name, step: step + 1, echoUrl });
  }

  /** Nothing at all: what it costs to start a new object and call it once. */
  async touch() {
    return true;
  }

  async alarm() {}
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/noop") return new Response("ok");
    const name = crypto.randomUUID();
    const object = env.OBJECTS.getByName(name);
    if (url.pathname === "/touch") return Response.json(await object.touch());
    if (url.pathname === "/create") return Response.json(await object.create(url.searchParams.get("echo")));
    if (url.pathname === "/pipeline") return Response.json(await object.create(url.searchParams.get("echo"), name));
    return new Response("not found", { status: 404 });
  },

  async queue(batch, env) {
    listReady ??= env.LIST.prepare("CREATE TABLE IF NOT EXISTS list (name TEXT PRIMARY KEY, step INTEGER NOT NULL)").run();
    await listReady;
    await env.LIST.batch(batch.messages.map((m) => env.LIST.prepare("INSERT OR REPLACE INTO list VALUES (?, ?)").bind(m.body.name, m.body.step)));
    await Promise.all(
      batch.messages.map(async (m) => {
        await env.OBJECTS.getByName(m.body.name).step(m.body.name, m.body.step, m.body.echoUrl);
        m.ack();
      }),
    );
  },
};
