// Cosmos DB semantics through the real @azure/cosmos client: runs against the local emulator, or unchanged against a real account (COSMOS_ENDPOINT, COSMOS_KEY).
import { ChangeFeedStartFrom, StatusCodes, type Container, type ItemDefinition, type OperationInput, type QueryIterator } from "@azure/cosmos";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { APPEND_SPROC_BODY, APPEND_SPROC_ID } from "../../scripts/cosmos/appendSproc.ts";
import { connect, eventually, realAccount, uniqueId, type Harness } from "./harness.ts";

vi.setConfig({ testTimeout: realAccount ? 120_000 : 15_000, hookTimeout: realAccount ? 120_000 : 15_000 });

type Event = ItemDefinition & { stream: { id: string; version: number }; eventType: string };

let h: Harness;
beforeAll(async () => {
  h = await connect();
});
afterAll(async () => {
  await h?.close();
});

const event = (eventType: string) => ({ eventType, eventData: { at: "2026-01-01T00:00:00Z" } });

async function withAppend(): Promise<Container> {
  const container = await h.container("/stream/id");
  await container.scripts.storedProcedures.create({ id: APPEND_SPROC_ID, body: APPEND_SPROC_BODY });
  return container;
}

async function append(container: Container, streamId: string, expectedVersion: number, eventTypes: string[]): Promise<boolean> {
  const { resource } = await container.scripts.storedProcedure(APPEND_SPROC_ID).execute<boolean>(streamId, [streamId, expectedVersion, eventTypes.map(event)]);
  return resource === true;
}

async function streamOf(container: Container, streamId: string): Promise<Event[]> {
  const { resources } = await container.items
    .query<Event>({ query: "SELECT * FROM e WHERE e.stream.id = @s ORDER BY e.stream.version", parameters: [{ name: "@s", value: streamId }] }, { partitionKey: streamId })
    .fetchAll();
  return resources;
}

describe("when databases and containers are created", () => {
  it("creates a database and a container once, and finds them again", async () => {
    const id = uniqueId("db");
    const first = await h.client.databases.createIfNotExists({ id });
    const second = await h.client.databases.createIfNotExists({ id });
    expect([first.statusCode, second.statusCode]).toEqual([201, 200]);
    const created = await first.database.containers.createIfNotExists({ id: "events", partitionKey: { paths: ["/stream/id"] } });
    const again = await first.database.containers.createIfNotExists({ id: "events", partitionKey: { paths: ["/stream/id"] } });
    expect([created.statusCode, again.statusCode]).toEqual([201, 200]);
    const { resource } = await again.container.read();
    expect(resource?.partitionKey?.paths).toEqual(["/stream/id"]);
    await first.database.delete();
    await expect(first.database.read()).rejects.toMatchObject({ code: 404 });
  });
});

describe("when documents are written and read", () => {
  let container: Container;
  beforeAll(async () => {
    container = await h.container("/pk");
  });

  it("creates with system properties and answers 409 on a duplicate id in the same partition", async () => {
    const { statusCode, resource } = await container.items.create({ id: "a", pk: "p1", n: 1 });
    expect(statusCode).toBe(201);
    expect(resource).toMatchObject({ id: "a", pk: "p1", n: 1 });
    expect(typeof resource?._etag).toBe("string");
    expect(typeof resource?._ts).toBe("number");
    expect(typeof resource?._rid).toBe("string");
    expect(typeof resource?._self).toBe("string");
    await expect(container.items.create({ id: "a", pk: "p1" })).rejects.toMatchObject({ code: 409 });
  });

  it("gives every document a self link made of its resource ids", async () => {
    for (let i = 0; i < 20; i++) {
      const { resource } = await container.items.create({ id: `self${i}`, pk: "selfs" });
      expect(resource!._self.split("/").filter(Boolean)).toHaveLength(6);
      expect(resource!._self.endsWith(`/docs/${resource!._rid}/`)).toBe(true);
    }
  });

  it("keeps ids unique per partition key only", async () => {
    await container.items.create({ id: "shared", pk: "left", side: "left" });
    await container.items.create({ id: "shared", pk: "right", side: "right" });
    expect((await container.item("shared", "left").read()).resource?.side).toBe("left");
    expect((await container.item("shared", "right").read()).resource?.side).toBe("right");
  });

  it("answers 404 for a missing document, also in another partition", async () => {
    expect((await container.item("nope", "p1").read()).statusCode).toBe(404);
    expect((await container.item("a", "other").read()).statusCode).toBe(404);
    await expect(container.item("nope", "p1").delete()).rejects.toMatchObject({ code: 404 });
  });

  it("replaces only with the current etag (412 otherwise), and every write changes the etag", async () => {
    const { resource: v1 } = await container.items.create({ id: "r", pk: "p1", n: 1 });
    const { resource: v2, statusCode } = await container
      .item("r", "p1")
      .replace({ id: "r", pk: "p1", n: 2 }, { accessCondition: { type: "IfMatch", condition: v1!._etag } });
    expect(statusCode).toBe(200);
    expect(v2!._etag).not.toBe(v1!._etag);
    await expect(
      container.item("r", "p1").replace({ id: "r", pk: "p1", n: 3 }, { accessCondition: { type: "IfMatch", condition: v1!._etag } }),
    ).rejects.toMatchObject({ code: 412 });
    await expect(container.item("r", "p1").delete({ accessCondition: { type: "IfMatch", condition: v1!._etag } })).rejects.toMatchObject({ code: 412 });
    expect((await container.item("r", "p1").read()).resource?.n).toBe(2);
  });

  it("refuses a document larger than 2 MB with 413", async () => {
    await expect(container.items.create({ id: "huge", pk: "p1", blob: "x".repeat(2.1 * 1024 * 1024) })).rejects.toMatchObject({ code: 413 });
  });

  it("upserts (201 then 200), patches and deletes", async () => {
    expect((await container.items.upsert({ id: "u", pk: "p2", n: 1 })).statusCode).toBe(201);
    const upserted = await container.items.upsert({ id: "u", pk: "p2", n: 5 });
    expect(upserted.statusCode).toBe(200);
    const patched = await container.item("u", "p2").patch([
      { op: "incr", path: "/n", value: 2 },
      { op: "add", path: "/tags", value: ["x"] },
    ]);
    expect(patched.resource).toMatchObject({ n: 7, tags: ["x"] });
    expect((await container.item("u", "p2").delete()).statusCode).toBe(204);
    expect((await container.item("u", "p2").read()).statusCode).toBe(404);
  });
});

describe("when documents are queried", () => {
  let container: Container;
  beforeAll(async () => {
    container = await h.container("/pk");
    for (let i = 1; i <= 7; i++) await container.items.create({ id: `q${i}`, pk: "qp", n: i, kind: i % 2 ? "odd" : "even" });
    await container.items.create({ id: "elsewhere", pk: "qx", n: 100, kind: "odd" });
  });

  const odd = { query: "SELECT * FROM c WHERE c.kind = @kind ORDER BY c.n DESC", parameters: [{ name: "@kind", value: "odd" }] };

  async function pagesOf(iterator: QueryIterator<{ id: string }>): Promise<string[][]> {
    const pages: string[][] = [];
    while (iterator.hasMoreResults()) {
      const page = await iterator.fetchNext();
      if (page.resources.length) pages.push(page.resources.map((d) => d.id));
    }
    return pages;
  }

  it("answers a parameterised ORDER BY query scoped to the partition key, page by page", async () => {
    const pages = await pagesOf(container.items.query<{ id: string }>(odd, { partitionKey: "qp", maxItemCount: 2 }));
    expect(pages.flat()).toEqual(["q7", "q5", "q3", "q1"]);
    expect(pages.length).toBeGreaterThan(1);
    for (const page of pages) expect(page.length).toBeLessThanOrEqual(2);
  });

  it("resumes from a saved continuation token without repeating or skipping", async () => {
    const first = await container.items.query<{ id: string }>(odd, { partitionKey: "qp", maxItemCount: 3 }).fetchNext();
    expect(first.resources.length).toBeGreaterThan(0);
    expect(first.continuationToken).toBeTruthy();
    const rest = await pagesOf(container.items.query<{ id: string }>(odd, { partitionKey: "qp", maxItemCount: 3, continuationToken: first.continuationToken! }));
    expect([...first.resources.map((d) => d.id), ...rest.flat()]).toEqual(["q7", "q5", "q3", "q1"]);
  });

  it("supports VALUE, MAX, TOP and COUNT", async () => {
    const max = await container.items.query<number>("SELECT VALUE MAX(c.n) FROM c", { partitionKey: "qp" }).fetchAll();
    expect(max.resources).toEqual([7]);
    const top = await container.items.query<{ id: string }>("SELECT TOP 2 c.id FROM c ORDER BY c.n", { partitionKey: "qp" }).fetchAll();
    expect(top.resources).toEqual([{ id: "q1" }, { id: "q2" }]);
    const count = await container.items.query<number>("SELECT VALUE COUNT(1) FROM c WHERE c.kind = 'even'", { partitionKey: "qp" }).fetchAll();
    expect(count.resources).toEqual([3]);
  });

  it("runs a cross-partition query over every partition", async () => {
    const { resources } = await container.items
      .query<{ id: string }>({ query: "SELECT c.id FROM c WHERE c.kind = @kind", parameters: [{ name: "@kind", value: "odd" }] })
      .fetchAll();
    expect(resources.map((d) => d.id).sort()).toEqual(["elsewhere", "q1", "q3", "q5", "q7"]);
  });

  it("calls user-defined functions", async () => {
    await container.scripts.userDefinedFunctions.create({ id: "square", body: "function (n) { return n * n; }" });
    const { resources } = await container.items.query<number>("SELECT VALUE udf.square(c.n) FROM c WHERE c.n <= 3 ORDER BY c.n", { partitionKey: "qp" }).fetchAll();
    expect(resources).toEqual([1, 4, 9]);
  });

  it("answers 400 to a malformed query", async () => {
    await expect(container.items.query("SELEKT * FROM c", { partitionKey: "qp" }).fetchAll()).rejects.toMatchObject({ code: 400 });
  });
});

describe("when stored procedures run", () => {
  let container: Container;
  beforeAll(async () => {
    container = await withAppend();
  });

  it("appends events with ids <streamId>:<version> when the expected version matches", async () => {
    expect(await append(container, "s-happy", 0, ["Initiated", "Created"])).toBe(true);
    expect(await append(container, "s-happy", 2, ["Settled"])).toBe(true);
    const events = await streamOf(container, "s-happy");
    expect(events.map((e) => [e.id, e.stream.version, e.eventType])).toEqual([
      ["s-happy:1", 1, "Initiated"],
      ["s-happy:2", 2, "Created"],
      ["s-happy:3", 3, "Settled"],
    ]);
  });

  it("refuses an append at a stale expected version and writes nothing", async () => {
    expect(await append(container, "s-conflict", 0, ["Initiated"])).toBe(true);
    expect(await append(container, "s-conflict", 0, ["Initiated"])).toBe(false);
    expect(await append(container, "s-conflict", 5, ["Settled"])).toBe(false);
    expect((await streamOf(container, "s-conflict")).map((e) => e.id)).toEqual(["s-conflict:1"]);
  });

  it("rolls back a partial write when the script throws, and surfaces its message as a 400", async () => {
    await container.scripts.storedProcedures.create({
      id: "writeThenThrow",
      body: `function (id) {
        var c = getContext().getCollection();
        c.createDocument(c.getSelfLink(), { id: id, stream: { id: "s-throw", version: 1 } }, function (err) {
          if (err) throw err;
          throw new Error("boom after write");
        });
      }`,
    });
    const execution = container.scripts.storedProcedure("writeThenThrow").execute("s-throw", ["t1"]);
    await expect(execution).rejects.toMatchObject({ code: 400, message: expect.stringContaining("boom after write") });
    expect((await container.item("t1", "s-throw").read()).statusCode).toBe(404);
  });

  it("refuses a write to another partition and rolls back the whole execution", async () => {
    await container.scripts.storedProcedures.create({
      id: "crossPartition",
      body: `function () {
        var c = getContext().getCollection();
        c.createDocument(c.getSelfLink(), { id: "mine", stream: { id: "s-home" } }, function (err) {
          if (err) throw err;
          c.createDocument(c.getSelfLink(), { id: "theirs", stream: { id: "s-away" } }, function (err2) {
            if (err2) throw err2;
            getContext().getResponse().setBody("written");
          });
        });
      }`,
    });
    const failure = await container.scripts
      .storedProcedure("crossPartition")
      .execute("s-home", [])
      .catch((e: { code: number }) => e);
    expect((failure as { code: number }).code).toBeGreaterThanOrEqual(400);
    expect((await container.item("mine", "s-home").read()).statusCode).toBe(404);
    expect((await container.item("theirs", "s-away").read()).statusCode).toBe(404);
  });

  it("runs the new body as soon as a procedure is replaced", async () => {
    const sproc = container.scripts.storedProcedure("version");
    await container.scripts.storedProcedures.create({ id: "version", body: "function () { getContext().getResponse().setBody('v1'); }" });
    expect((await sproc.execute("any", [])).resource).toBe("v1");
    await sproc.replace({ id: "version", body: "function () { getContext().getResponse().setBody('v2'); }" });
    expect((await sproc.execute("any", [])).resource).toBe("v2");
  });

  it("replaces a procedure only if it is still the version read, when asked (If-Match)", async () => {
    const sproc = container.scripts.storedProcedure("guarded");
    const read = (await container.scripts.storedProcedures.create({ id: "guarded", body: "function () { getContext().getResponse().setBody(1); }" })).resource!;
    await sproc.replace({ id: "guarded", body: "function () { getContext().getResponse().setBody(2); }" });
    const stale = sproc.replace({ id: "guarded", body: "function () { getContext().getResponse().setBody(3); }" }, { accessCondition: { type: "IfMatch", condition: read._etag } });
    await expect(stale).rejects.toMatchObject({ code: 412 });
    expect((await sproc.execute("any", [])).resource).toBe(2);
  });

  it("keeps two different procedures apart", async () => {
    await container.scripts.storedProcedures.create({ id: "double", body: "function (n) { getContext().getResponse().setBody(n * 2); }" });
    await container.scripts.storedProcedures.create({ id: "negate", body: "function (n) { getContext().getResponse().setBody(-n); }" });
    const [a, b] = await Promise.all([
      container.scripts.storedProcedure("double").execute("any", [21]),
      container.scripts.storedProcedure("negate").execute("any", [21]),
    ]);
    expect([a.resource, b.resource]).toEqual([42, -21]);
  });

  it("lets exactly one of 20 concurrent appends at the same expected version succeed", async () => {
    expect(await append(container, "s-race", 0, ["Initiated"])).toBe(true);
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => append(container, "s-race", 1, [`Racer${i}`])));
    const successes = outcomes.filter((o) => o.status === "fulfilled" && o.value === true);
    expect(successes).toHaveLength(1);
    for (const o of outcomes) if (o.status === "rejected") expect((o.reason as { code: number }).code).toBeGreaterThanOrEqual(400);
    expect((await streamOf(container, "s-race")).map((e) => e.stream.version)).toEqual([1, 2]);
  });
});

describe("when the change feed is read", () => {
  type Doc = ItemDefinition & { pk: string; seq: number };

  async function drain(container: Container, from: ChangeFeedStartFrom, maxItemCount = 100): Promise<{ docs: Doc[]; token: string }> {
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: from, maxItemCount });
    const docs: Doc[] = [];
    for (;;) {
      const page = await iterator.readNext();
      if (page.statusCode === StatusCodes.NotModified) return { docs, token: page.continuationToken };
      docs.push(...page.result);
    }
  }

  it("reads from the beginning in pages, then answers 304 when nothing is new", async () => {
    const container = await h.container("/pk");
    for (let i = 0; i < 5; i++) await container.items.create({ id: `b${i}`, pk: "p", seq: i });
    const iterator = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(), maxItemCount: 2 });
    const seen: string[] = [];
    const sizes: number[] = [];
    for (;;) {
      const page = await iterator.readNext();
      if (page.statusCode === StatusCodes.NotModified) break;
      sizes.push(page.result.length);
      seen.push(...page.result.map((d) => d.id!));
    }
    expect(seen).toEqual(["b0", "b1", "b2", "b3", "b4"]);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2);
    expect((await iterator.readNext()).statusCode).toBe(StatusCodes.NotModified);
  });

  it("shows each created or replaced document once, in its latest version", async () => {
    const container = await h.container("/pk");
    await container.items.create({ id: "x", pk: "p", seq: 1 });
    await container.items.create({ id: "y", pk: "p", seq: 1 });
    await container.items.upsert({ id: "x", pk: "p", seq: 2 });
    await container.item("y", "p").replace({ id: "y", pk: "p", seq: 3 });
    const { docs } = await drain(container, ChangeFeedStartFrom.Beginning());
    expect(docs.map((d) => [d.id, d.seq])).toEqual([
      ["x", 2],
      ["y", 3],
    ]);
  });

  it("starts from now, from a time, and per partition key", async () => {
    const container = await h.container("/pk");
    await container.items.create({ id: "old", pk: "a", seq: 0 });
    const now = container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: ChangeFeedStartFrom.Now() });
    expect((await now.readNext()).statusCode).toBe(StatusCodes.NotModified);
    await container.items.create({ id: "new-a", pk: "a", seq: 1 });
    await container.items.create({ id: "new-b", pk: "b", seq: 1 });
    const fromNow = await eventually(async () => {
      const page = await now.readNext();
      return page.result.length ? page.result.map((d) => d.id) : undefined;
    });
    expect(fromNow).toEqual(["new-a", "new-b"]);

    const past = await drain(container, ChangeFeedStartFrom.Time(new Date(Date.now() - 3_600_000)));
    expect(past.docs.map((d) => d.id)).toEqual(["old", "new-a", "new-b"]);
    const future = await drain(container, ChangeFeedStartFrom.Time(new Date(Date.now() + 3_600_000)));
    expect(future.docs).toEqual([]);

    const onlyA = await drain(container, ChangeFeedStartFrom.Beginning("a"));
    expect(onlyA.docs.map((d) => d.id)).toEqual(["old", "new-a"]);
    await container.items.create({ id: "later-a", pk: "a", seq: 2 });
    await container.items.create({ id: "later-b", pk: "b", seq: 2 });
    const resumedA = await drain(container, ChangeFeedStartFrom.Continuation(onlyA.token));
    expect(resumedA.docs.map((d) => d.id)).toEqual(["later-a"]);
  });

  it("resumes from saved continuations under concurrent writers with nothing skipped or repeated", async () => {
    const container = await h.container("/pk");
    const writers = 4;
    const perWriter = 25;
    const writing = Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let seq = 0; seq < perWriter; seq++) await container.items.create({ id: `w${w}-${seq}`, pk: `p${w}`, seq });
      }),
    );
    const seen: Doc[] = [];
    let token: string | undefined;
    const deadline = Date.now() + 60_000;
    while (seen.length < writers * perWriter && Date.now() < deadline) {
      // A fresh iterator per page, as a relay restarted from its saved continuation would.
      const from = token ? ChangeFeedStartFrom.Continuation(token) : ChangeFeedStartFrom.Beginning();
      const page = await container.items.getChangeFeedIterator<Doc>({ changeFeedStartFrom: from, maxItemCount: 7 }).readNext();
      token = page.continuationToken;
      seen.push(...page.result);
    }
    await writing;
    const ids = seen.map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(writers * perWriter);
    for (let w = 0; w < writers; w++) {
      const order = seen.filter((d) => d.pk === `p${w}`).map((d) => d.seq);
      expect(order).toEqual(Array.from({ length: perWriter }, (_, i) => i));
    }
  });
});

describe("when a transactional batch runs", () => {
  let container: Container;
  beforeAll(async () => {
    container = await h.container("/pk");
  });

  it("applies every operation of a successful batch", async () => {
    await container.items.create({ id: "to-replace", pk: "bp", n: 0 });
    const ops: OperationInput[] = [
      { operationType: "Create", resourceBody: { id: "c1", pk: "bp" } },
      { operationType: "Upsert", resourceBody: { id: "c2", pk: "bp" } },
      { operationType: "Replace", id: "to-replace", resourceBody: { id: "to-replace", pk: "bp", n: 1 } },
      { operationType: "Read", id: "c1" },
    ];
    const response = await container.items.batch(ops, "bp");
    expect(response.code).toBe(200);
    expect(response.result?.map((r) => r.statusCode)).toEqual([201, 201, 200, 200]);
    expect((await container.item("to-replace", "bp").read()).resource?.n).toBe(1);
  });

  it("applies nothing when one operation fails: it keeps its status, the others get 424", async () => {
    await container.items.create({ id: "exists", pk: "bf" });
    const ops: OperationInput[] = [
      { operationType: "Create", resourceBody: { id: "n1", pk: "bf" } },
      { operationType: "Create", resourceBody: { id: "exists", pk: "bf" } },
      { operationType: "Create", resourceBody: { id: "n2", pk: "bf" } },
    ];
    const response = await container.items.batch(ops, "bf");
    expect(response.code).toBe(207);
    expect(response.result?.map((r) => r.statusCode)).toEqual([424, 409, 424]);
    expect((await container.item("n1", "bf").read()).statusCode).toBe(404);
    expect((await container.item("n2", "bf").read()).statusCode).toBe(404);
  });
});
