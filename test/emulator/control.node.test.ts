// Emulator-only behaviour: the /_emulator/ control plane (counters, faults, reset, stats) and the stored-procedure runtime's limits.
import { ChangeFeedStartFrom, CosmosClient, type Container } from "@azure/cosmos";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startCosmosEmulator, type CosmosEmulator } from "../../scripts/cosmos/server.ts";
import { connect, control, realAccount, type Harness } from "./harness.ts";

type Rule = { id: number; kind: string; mode: string; fired: number; active: boolean };
type Counters = Record<"sproc" | "query" | "read" | "write" | "changefeed" | "batch" | "other", number>;

describe.skipIf(realAccount)("the emulator", () => {
  let h: Harness;
  let emulator: CosmosEmulator;
  let container: Container;
  const budgetMs = 300;

  beforeAll(async () => {
    h = await connect({ sprocTimeoutMs: budgetMs });
    emulator = h.emulator!;
    container = await h.container("/pk");
    await container.scripts.storedProcedures.create({ id: "echo", body: "function (x) { getContext().getResponse().setBody(x); }" });
  });
  afterAll(async () => {
    await h?.close();
  });
  afterEach(async () => {
    await control(emulator, "DELETE", "faults");
  });

  const sproc = (id: string, body: string) => container.scripts.storedProcedures.create({ id, body }).then(() => container.scripts.storedProcedure(id));

  describe("when a client connects", () => {
    it("advertises its own http address, and serves a client with endpoint discovery off (as in workerd)", async () => {
      const { resource } = await h.client.getDatabaseAccount();
      expect(resource?.writableLocations.map((l) => l.databaseAccountEndpoint)).toEqual([`${emulator.url}/`]);
      const plain = new CosmosClient({ endpoint: emulator.url, key: "any", connectionPolicy: { enableEndpointDiscovery: false } });
      try {
        const c = plain.database(h.database.id).container(container.id);
        await c.items.create({ id: "no-discovery", pk: "nd" });
        expect((await c.item("no-discovery", "nd").read()).statusCode).toBe(200);
        expect((await c.items.query("SELECT VALUE COUNT(1) FROM c", { partitionKey: "nd" }).fetchAll()).resources).toEqual([1]);
      } finally {
        plain.dispose();
      }
    });
  });

  describe("when counting requests", () => {
    it("counts each request by operation kind, and resets", async () => {
      const everyKind = async (n: number) => {
        await container.items.create({ id: `k${n}`, pk: "k" });
        await container.item(`k${n}`, "k").read();
        await container.items.query("SELECT * FROM c", { partitionKey: "k" }).fetchAll();
        await container.scripts.storedProcedure("echo").execute("k", [n]);
        await container.items.batch([{ operationType: "Create", resourceBody: { id: `kb${n}`, pk: "k" } }], "k");
        await container.items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning() }).readNext();
      };
      await everyKind(0); // warms the client's caches of metadata
      expect((await control(emulator, "POST", "counters/reset")).status).toBe(200);
      await everyKind(1);
      const { body } = await control<Counters>(emulator, "GET", "counters");
      expect(body).toMatchObject({ sproc: 1, query: 1, read: 1, write: 1, changefeed: 1, batch: 1 });
      expect(body.other).toBeGreaterThan(0);
      await control(emulator, "POST", "counters/reset");
      expect((await control<Counters>(emulator, "GET", "counters")).body).toEqual({ sproc: 0, query: 0, read: 0, write: 0, changefeed: 0, batch: 0, other: 0 });
    });

    it("counts the requests of one partition key apart, and resets them too", async () => {
      await control(emulator, "POST", "counters/reset");
      await container.items.create({ id: "p1", pk: "mine" });
      await container.item("p1", "mine").read();
      await container.scripts.storedProcedure("echo").execute("mine", [1]);
      await container.items.create({ id: "p2", pk: "theirs" });
      await container.items.query("SELECT * FROM c", { partitionKey: "theirs" }).fetchAll();
      expect((await control<Counters>(emulator, "GET", "counters?partition=mine")).body).toEqual({ sproc: 1, query: 0, read: 1, write: 1, changefeed: 0, batch: 0, other: 0 });
      expect((await control<Counters>(emulator, "GET", "counters?partition=theirs")).body).toMatchObject({ sproc: 0, query: 1, write: 1 });
      expect((await control<Counters>(emulator, "GET", "counters")).body).toMatchObject({ sproc: 1, query: 1, read: 1, write: 2 });
      await control(emulator, "POST", "counters/reset");
      expect((await control<Counters>(emulator, "GET", "counters?partition=mine")).body).toMatchObject({ sproc: 0, read: 0, write: 0 });
    });
  });

  describe("when faults are injected", () => {
    it("answers 429 with a retry-after that the SDK waits for before it retries", async () => {
      await control(emulator, "POST", "counters/reset");
      const added = await control<Rule>(emulator, "POST", "faults", { kind: "write", mode: "429", count: 2, retryAfterMs: 40 });
      expect(added.status).toBe(201);
      const response = await container.items.create({ id: "throttled", pk: "f" });
      expect(response.statusCode).toBe(201);
      expect(Number(response.headers["x-ms-throttle-retry-count"])).toBe(2);
      expect(Number(response.headers["x-ms-throttle-retry-wait-time-ms"])).toBe(80);
      expect((await control<Counters>(emulator, "GET", "counters")).body.write).toBe(3);
      const { body } = await control<{ rules: Rule[] }>(emulator, "GET", "faults");
      expect(body.rules).toMatchObject([{ kind: "write", mode: "429", fired: 2, active: false }]);
    });

    it("answers 503 to the next requests of one kind only", async () => {
      await control(emulator, "POST", "faults", { kind: "sproc", mode: "503", count: 1 });
      await expect(container.scripts.storedProcedure("echo").execute("f", [1])).rejects.toMatchObject({ code: 503 });
      expect((await container.item("throttled", "f").read()).statusCode).toBe(200);
      expect((await container.scripts.storedProcedure("echo").execute("f", [2])).resource).toBe(2);
    });

    it("fails a seeded fraction of requests, the same ones for the same seed", async () => {
      const failures = async (tag: string) => {
        await control(emulator, "POST", "faults", { kind: "write", mode: "503", fraction: 0.5, seed: 42 });
        const failed: number[] = [];
        for (let i = 0; i < 20; i++)
          await container.items.create({ id: `${tag}${i}`, pk: "fr" }).catch((e: { code: number }) => {
            expect(e.code).toBe(503);
            failed.push(i);
          });
        const { body } = await control<{ rules: Rule[] }>(emulator, "GET", "faults");
        expect(body.rules[0]!.fired).toBe(failed.length);
        await control(emulator, "DELETE", "faults");
        return failed;
      };
      const first = await failures("a");
      expect(first.length).toBeGreaterThan(0);
      expect(first.length).toBeLessThan(20);
      expect(await failures("b")).toEqual(first);
    });

    it("delays requests of a kind, then serves them normally", async () => {
      await control(emulator, "POST", "faults", { kind: "read", mode: "delay", delayMs: 150, count: 1 });
      const started = performance.now();
      const { statusCode } = await container.item("throttled", "f").read();
      expect(statusCode).toBe(200);
      expect(performance.now() - started).toBeGreaterThanOrEqual(145);
      expect((await control<{ rules: Rule[] }>(emulator, "GET", "faults")).body.rules[0]!.fired).toBe(1);
    });

    it("answers queries of a partition as a replica behind would (stale): without its newest documents, for the next count", async () => {
      for (const n of [1, 2, 3]) await container.items.create({ id: `s${n}`, pk: "stale", n });
      const ids = async () => (await container.items.query<{ id: string }>("SELECT c.id FROM c ORDER BY c.n", { partitionKey: "stale" }).fetchAll()).resources.map((d) => d.id);
      expect((await control(emulator, "POST", "faults", { kind: "query", mode: "stale", documents: 2, count: 1, partition: "stale" })).status).toBe(201);
      await container.items.query("SELECT * FROM c", { partitionKey: "another" }).fetchAll(); // another partition's query does not spend it
      expect(await ids()).toEqual(["s1"]);
      expect(await ids()).toEqual(["s1", "s2", "s3"]);
      expect((await control(emulator, "POST", "faults", { kind: "sproc", mode: "stale" })).status).toBe(400);
    });

    it("rejects an invalid rule, and clears all rules", async () => {
      expect((await control(emulator, "POST", "faults", { kind: "everything", mode: "429" })).status).toBe(400);
      expect((await control(emulator, "POST", "faults", { kind: "any", mode: "503", fraction: 2 })).status).toBe(400);
      await control(emulator, "POST", "faults", { kind: "any", mode: "503" });
      await control(emulator, "DELETE", "faults");
      expect((await control<{ rules: Rule[] }>(emulator, "GET", "faults")).body.rules).toEqual([]);
      expect((await container.item("throttled", "f").read()).statusCode).toBe(200);
    });
  });

  describe("when reset", () => {
    it("drops every database, and the stats count what is stored", async () => {
      const other = await startCosmosEmulator();
      const client = new CosmosClient({ endpoint: other.url, key: "any" });
      try {
        const { database } = await client.databases.createIfNotExists({ id: "to-drop" });
        const { container: c } = await database.containers.createIfNotExists({ id: "c", partitionKey: { paths: ["/pk"] } });
        for (let i = 0; i < 3; i++) await c.items.create({ id: `d${i}`, pk: "p" });
        const stats = await control<{ documents: number; memory: { heapUsed: number } }>(other, "GET", "stats");
        expect(stats.body.documents).toBe(3);
        expect(stats.body.memory.heapUsed).toBeGreaterThan(0);
        expect((await control(other, "POST", "reset")).status).toBe(200);
        await expect(database.read()).rejects.toMatchObject({ code: 404 });
        expect((await control<{ documents: number }>(other, "GET", "stats")).body.documents).toBe(0);
      } finally {
        client.dispose();
        await other.close();
      }
    });
  });

  describe("when a stored procedure misbehaves", () => {
    it("stops it once its time budget is spent and rolls back its writes", async () => {
      const p = await sproc(
        "spin",
        `function () {
          var c = getContext().getCollection();
          c.createDocument(c.getSelfLink(), { id: "before-spin", pk: "t" }, function (err) {
            if (err) throw err;
            while (true) {}
          });
        }`,
      );
      await expect(p.execute("t", [])).rejects.toMatchObject({ code: 408 });
      expect((await container.item("before-spin", "t").read()).statusCode).toBe(404);
    });

    it("stops it even when it catches the budget error and keeps looping", async () => {
      const p = await sproc(
        "stubborn",
        `function () {
          var c = getContext().getCollection();
          c.createDocument(c.getSelfLink(), { id: "stubborn", pk: "t" });
          for (;;) { try { while (true) {} } catch (e) {} }
        }`,
      );
      await expect(p.execute("t", [])).rejects.toMatchObject({ code: 408 });
      expect((await container.item("stubborn", "t").read()).statusCode).toBe(404);
      expect((await container.scripts.storedProcedure("echo").execute("t", ["still serving"])).resource).toBe("still serving");
    });

    it("does not let globals of one execution leak into the next", async () => {
      const p = await sproc(
        "leaky",
        `function () {
          var seen = typeof leaked === "undefined" ? 0 : leaked;
          leaked = seen + 1;
          var json = JSON.stringify({ ok: true });
          JSON = { stringify: function () { return "hijacked"; } };
          getContext().getResponse().setBody([seen, json]);
        }`,
      );
      expect((await p.execute("t", [])).resource).toEqual([0, '{"ok":true}']);
      expect((await p.execute("t", [])).resource).toEqual([0, '{"ok":true}']);
    });

    it("answers 400 with the failed operation's status as the sub-status", async () => {
      await container.items.create({ id: "taken", pk: "t" });
      const p = await sproc(
        "duplicate",
        `function () {
          var c = getContext().getCollection();
          c.createDocument(c.getSelfLink(), { id: "taken", pk: "t" }, function (err) { if (err) throw err; });
        }`,
      );
      await expect(p.execute("t", [])).rejects.toMatchObject({ code: 400, substatus: 409 });
      const q = await sproc("notHere", `function () { throw new Error(404, "not here"); }`);
      await expect(q.execute("t", [])).rejects.toMatchObject({ code: 400, substatus: 404, message: expect.stringContaining("not here") });
    });
  });

  describe("when a stored procedure uses the rest of the server-side API", () => {
    it("reads by alt and self link, pages queries, replaces with an etag, upserts and deletes", async () => {
      for (let i = 1; i <= 5; i++) await container.items.create({ id: `api${i}`, pk: "api", n: i });
      const p = await sproc(
        "tour",
        `function () {
          var c = getContext().getCollection();
          var out = {};
          c.readDocument(c.getAltLink() + "/docs/api1", function (err, byAlt) {
            if (err) throw err;
            out.alt = byAlt.n;
            c.readDocument(byAlt._self, function (err, bySelf) {
              if (err) throw err;
              out.self = bySelf.id;
              c.replaceDocument(bySelf._self, { id: "api1", pk: "api", n: 10 }, { etag: '"stale"' }, function (err) {
                out.stale = err.number;
                c.replaceDocument(bySelf._self, { id: "api1", pk: "api", n: 10 }, { etag: bySelf._etag }, function (err, replaced) {
                  if (err) throw err;
                  out.replaced = replaced.n;
                  page(undefined, []);
                });
              });
            });
          });
          function page(continuation, ids) {
            c.queryDocuments(c.getSelfLink(), "SELECT * FROM c WHERE c.pk = 'api' ORDER BY c.n", { pageSize: 2, continuation: continuation },
              function (err, docs, options) {
                if (err) throw err;
                docs.forEach(function (d) { ids.push(d.id); });
                if (options.continuation) return page(options.continuation, ids);
                out.paged = ids;
                __.upsertDocument(__.getSelfLink(), { id: "api6", pk: "api" }, function (err) {
                  if (err) throw err;
                  __.deleteDocument(__.getAltLink() + "/docs/api2", function (err) {
                    if (err) throw err;
                    __.filter(function (d) { return d.n > 3; }, function (err, docs) {
                      out.filtered = docs.map(function (d) { return d.id; }).sort();
                      getContext().getResponse().setBody(out);
                    });
                  });
                });
              });
          }
        }`,
      );
      const { resource } = await p.execute("api", []);
      expect(resource).toEqual({
        alt: 1,
        self: "api1",
        stale: 412,
        replaced: 10,
        paged: ["api2", "api3", "api4", "api5", "api1"],
        filtered: ["api1", "api4", "api5"],
      });
      expect((await container.item("api2", "api").read()).statusCode).toBe(404);
      expect((await container.item("api6", "api").read()).statusCode).toBe(200);
    });

    it("runs promise-based procedures and rolls back when their promise rejects", async () => {
      const ok = await sproc(
        "promised",
        `async function (id) {
          var created = await new Promise(function (resolve, reject) {
            __.createDocument(__.getSelfLink(), { id: id, pk: "pr" }, function (err, doc) { if (err) reject(err); else resolve(doc); });
          });
          getContext().getResponse().setBody(created.id);
        }`,
      );
      expect((await ok.execute("pr", ["p1"])).resource).toBe("p1");
      const failing = await sproc(
        "promisedFailure",
        `async function (id) {
          await new Promise(function (resolve) { __.createDocument(__.getSelfLink(), { id: id, pk: "pr" }, resolve); });
          throw new Error("rejected later");
        }`,
      );
      await expect(failing.execute("pr", ["p2"])).rejects.toMatchObject({ code: 400, message: expect.stringContaining("rejected later") });
      expect((await container.item("p2", "pr").read()).statusCode).toBe(404);
    });

    it("refuses a body that does not compile", async () => {
      await expect(container.scripts.storedProcedures.create({ id: "broken", body: "function ( {" })).rejects.toMatchObject({ code: 400 });
    });
  });
});
