// Emulator-only: data kept in a dataDir across close and restart, and the CLI's start, signals and port errors.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ChangeFeedStartFrom, CosmosClient, StatusCodes, type Container } from "@azure/cosmos";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { APPEND_SPROC_BODY, APPEND_SPROC_ID } from "../../scripts/cosmos/appendSproc.ts";
import { EMULATOR_KEY, startCosmosEmulator, type CosmosEmulator } from "../../scripts/cosmos/server.ts";
import { realAccount } from "./harness.ts";

vi.setConfig({ testTimeout: 30_000 });

const MAIN = fileURLToPath(new URL("../../scripts/cosmos/main.ts", import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];
const clients: CosmosClient[] = [];
const emulators: CosmosEmulator[] = [];

const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cosmos-emulator-"));
  dirs.push(dir);
  return dir;
};

afterEach(async () => {
  for (const c of clients.splice(0)) c.dispose();
  for (const e of emulators.splice(0)) await e.close();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function open(url: string): Promise<Container> {
  const client = new CosmosClient({ endpoint: url, key: EMULATOR_KEY });
  clients.push(client);
  const { database } = await client.databases.createIfNotExists({ id: "db" });
  const { container } = await database.containers.createIfNotExists({ id: "events", partitionKey: { paths: ["/stream/id"] } });
  return container;
}

async function start(dataDir: string): Promise<Container> {
  const emulator = await startCosmosEmulator({ dataDir });
  emulators.push(emulator);
  return open(emulator.url);
}

async function stop() {
  for (const c of clients.splice(0)) c.dispose();
  for (const e of emulators.splice(0)) await e.close();
}

const append = (c: Container, stream: string, expected: number, count: number) =>
  c.scripts
    .storedProcedure(APPEND_SPROC_ID)
    .execute<boolean>(stream, [stream, expected, Array.from({ length: count }, (_, i) => ({ eventType: `E${expected + i + 1}`, eventData: {} }))])
    .then((r) => r.resource);

async function feed(c: Container, from: ChangeFeedStartFrom) {
  const iterator = c.items.getChangeFeedIterator<{ id: string }>({ changeFeedStartFrom: from });
  const ids: string[] = [];
  for (;;) {
    const page = await iterator.readNext();
    if (page.statusCode === StatusCodes.NotModified) return { ids, token: page.continuationToken };
    ids.push(...page.result.map((d) => d.id));
  }
}

/** Starts the CLI and resolves with its URL once it prints its line. */
function cli(args: string[]): Promise<{ child: ChildProcess; url: string; line: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.includes("listening on"));
      if (line) resolve({ child, url: line.split(" ").pop()!, line });
    });
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once("exit", (code) => resolve(code))));

describe.skipIf(realAccount)("the emulator with a dataDir", () => {
  describe("when the emulator is closed and started again on the same dataDir", () => {
    it("keeps documents, procedures, etags and the change feed", async () => {
      const dir = tempDir();
      let c = await start(dir);
      await c.scripts.storedProcedures.create({ id: APPEND_SPROC_ID, body: APPEND_SPROC_BODY });
      expect(await append(c, "s1", 0, 2)).toBe(true);
      expect(await append(c, "s2", 0, 1)).toBe(true);
      await c.items.create({ id: "gone", stream: { id: "s3" } });
      await c.item("gone", "s3").delete();
      const before = await feed(c, ChangeFeedStartFrom.Beginning());
      expect(before.ids).toEqual(["s1:1", "s1:2", "s2:1"]);
      const etag = (await c.item("s1:1", "s1").read()).resource?._etag;
      await stop();

      c = await start(dir);
      expect((await c.item("s1:1", "s1").read()).resource?._etag).toBe(etag);
      expect((await c.item("gone", "s3").read()).statusCode).toBe(404);
      expect(await append(c, "s1", 2, 1)).toBe(true);
      expect(await append(c, "s1", 2, 1)).toBe(false);
      const resumed = await feed(c, ChangeFeedStartFrom.Continuation(before.token));
      expect(resumed.ids).toEqual(["s1:3"]);
      expect((await feed(c, ChangeFeedStartFrom.Beginning())).ids).toEqual(["s1:1", "s1:2", "s2:1", "s1:3"]);
      await stop();
    });

    it("compacts its journal on close, and restores the same state from it", async () => {
      const dir = tempDir();
      let c = await start(dir);
      for (let i = 0; i < 30; i++) await c.items.upsert({ id: "hot", stream: { id: "h" }, n: i });
      await stop();
      const journal = readFileSync(path.join(dir, "cosmos.jsonl"), "utf8").trim().split("\n");
      expect(journal.length).toBeLessThan(10);
      c = await start(dir);
      expect((await c.item("hot", "h").read()).resource?.n).toBe(29);
    });

    it("refuses a second emulator on a dataDir in use, and frees it on close", async () => {
      const dir = tempDir();
      await start(dir);
      await expect(startCosmosEmulator({ dataDir: dir })).rejects.toThrow(/in use/);
      await stop();
      const c = await start(dir);
      expect((await c.read()).statusCode).toBe(200);
    });

    it("ignores a torn last line left by a crash in the middle of a write", async () => {
      const dir = tempDir();
      let c = await start(dir);
      await c.items.create({ id: "kept", stream: { id: "t" } });
      await stop();
      appendFileSync(path.join(dir, "cosmos.jsonl"), '{"t":"w","db":"db","coll":"events","w":[["[\\"t\\"]","torn"');
      c = await start(dir);
      expect((await c.item("kept", "t").read()).statusCode).toBe(200);
      expect((await c.item("torn", "t").read()).statusCode).toBe(404);
    });
  });

  describe("when run from the command line", () => {
    it("prints one line once ready, and keeps acknowledged writes across SIGTERM and SIGKILL", async () => {
      const dir = tempDir();
      let run = await cli(["--port", "0", "--data", dir]);
      expect(run.line).toMatch(/^cosmos emulator listening on http:\/\/127\.0\.0\.1:\d+$/);
      let c = await open(run.url);
      for (let i = 0; i < 10; i++) await c.items.create({ id: `term${i}`, stream: { id: "cli" } });
      run.child.kill("SIGTERM");
      expect(await exited(run.child)).toBe(0);

      run = await cli(["--port", "0", "--data", dir]);
      c = await open(run.url);
      for (let i = 0; i < 10; i++) await c.items.create({ id: `kill${i}`, stream: { id: "cli" } });
      run.child.kill("SIGKILL");
      await exited(run.child);

      run = await cli(["--port", "0", "--data", dir]);
      c = await open(run.url);
      const { resources } = await c.items.query<number>("SELECT VALUE COUNT(1) FROM c", { partitionKey: "cli" }).fetchAll();
      expect(resources).toEqual([20]);
      run.child.kill("SIGTERM");
      expect(await exited(run.child)).toBe(0);
    });

    it("refuses a port in use with a one-line error naming the port, and exit code 1", async () => {
      const busy = await startCosmosEmulator();
      emulators.push(busy);
      const child = spawn(process.execPath, [MAIN, "--port", String(busy.port)], { stdio: ["ignore", "pipe", "pipe"] });
      children.push(child);
      let err = "";
      child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
      expect(await exited(child)).toBe(1);
      const lines = err.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(String(busy.port));
    });
  });
});
