// The platform floor of a durable create, measured by `npm run bench` beside our create: a new SQLite-backed
// Durable Object that writes an outbox row and sets an alarm, makes one outgoing request (the benchmark's own
// echo server, standing in for Cosmos), then records the outcome and moves the alarm. No auth, validation,
// Cosmos SDK or queue: what is left once our code is taken away.
import { DurableObject } from "cloudflare:workers";

export class Floor extends DurableObject {
  async create(echoUrl) {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, state TEXT NOT NULL)");
    sql.exec("INSERT OR REPLACE INTO outbox VALUES (1, 'pending')");
    await this.ctx.storage.setAlarm(Date.now() + 60_000);
    await (await fetch(echoUrl, { method: "POST", body: "{}" })).text();
    sql.exec("UPDATE outbox SET state = 'committed'");
    await this.ctx.storage.setAlarm(Date.now() + 30_000);
    return true;
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
    if (url.pathname === "/touch") return Response.json(await env.OBJECTS.getByName(crypto.randomUUID()).touch());
    if (url.pathname === "/create") return Response.json(await env.OBJECTS.getByName(crypto.randomUUID()).create(url.searchParams.get("echo")));
    return new Response("not found", { status: 404 });
  },
};
