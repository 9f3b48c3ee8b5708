// Benchmark of the local Cosmos emulator: successful appends/s through the generic append stored procedure (`npm run bench:cosmos -- --json out.json`).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CosmosClient, type Container } from "@azure/cosmos";
import { APPEND_SPROC_BODY, APPEND_SPROC_ID } from "./cosmos/appendSproc.ts";
import { EMULATOR_KEY } from "./cosmos/server.ts";

const EVENTS_PER_STREAM = 10;

const { values } = parseArgs({
  options: {
    json: { type: "string" },
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    docs: { type: "string", default: "100,100000" },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const preloads = values.docs.split(",").map(Number);

type Row = {
  preloaded: number;
  mode: string;
  workers: number;
  appendsPerSec: number;
  conflicts: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerAppend: number | null;
  clientCpuUsPerAppend: number;
};

/** The emulator runs in its own process (on port 0), so that it and this client each get a core. */
async function startEmulator(): Promise<{ child: ChildProcess; url: string }> {
  const main = fileURLToPath(new URL("./cosmos/main.ts", import.meta.url));
  const child = spawn(process.execPath, [main, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`emulator exited with ${code}`)));
  });
  return { child, url };
}

/** CPU time of a process in microseconds, from /proc (Linux); null elsewhere. */
function cpuOf(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return null;
  }
}

async function seed(container: Container, documents: number) {
  const streams = Math.ceil(documents / 100);
  let next = 0;
  const worker = async () => {
    while (next < streams) {
      const s = `seed-${next++}`;
      const ops = Array.from({ length: Math.min(100, documents - (next - 1) * 100) }, (_, i) => ({
        operationType: "Create" as const,
        resourceBody: { id: `${s}:${i + 1}`, stream: { id: s, version: i + 1 }, eventType: "Seeded", eventData: { i } },
      }));
      const res = await container.items.batch(ops, s);
      if (res.code !== 200) throw new Error(`seeding failed with ${res.code}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

const event = { eventType: "PaymentInitiated", eventData: { amount: 1000, currency: "GBP" } };

async function run(
  serverPid: number,
  label: { preloaded: number; mode: string; workers: number },
  append: (worker: number) => Promise<boolean>,
): Promise<Row> {
  const latencies: number[] = [];
  let conflicts = 0;
  const end = performance.now() + seconds * 1000;
  const server0 = cpuOf(serverPid);
  const client0 = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: label.workers }, async (_, w) => {
      while (performance.now() < end) {
        const t = performance.now();
        if (await append(w)) latencies.push(performance.now() - t);
        else conflicts++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const server1 = cpuOf(serverPid);
  const client = process.cpuUsage(client0);
  latencies.sort((a, b) => a - b);
  const n = latencies.length;
  return {
    ...label,
    appendsPerSec: Math.round(n / elapsed),
    conflicts,
    p50Ms: Number((latencies[Math.floor(n * 0.5)] ?? 0).toFixed(2)),
    p99Ms: Number((latencies[Math.floor(n * 0.99)] ?? 0).toFixed(2)),
    serverCpuUsPerAppend: server0 === null || server1 === null ? null : Math.round((server1 - server0) / n),
    clientCpuUsPerAppend: Math.round((client.user + client.system) / n),
  };
}

type Setup = { preloaded: number; container: Container };

/** One container per preload size, in the same emulator, so that measurements can alternate between them. */
async function prepare(client: CosmosClient, url: string): Promise<Setup[]> {
  await fetch(`${url}/_emulator/reset`, { method: "POST" });
  const { database } = await client.databases.createIfNotExists({ id: "bench" });
  const setups: Setup[] = [];
  for (const preloaded of preloads) {
    const { container } = await database.containers.createIfNotExists({ id: `events-${preloaded}`, partitionKey: { paths: ["/stream/id"] } });
    await container.scripts.storedProcedures.create({ id: APPEND_SPROC_ID, body: APPEND_SPROC_BODY });
    const t = performance.now();
    await seed(container, preloaded);
    const stats = (await (await fetch(`${url}/_emulator/stats`)).json()) as { documents: number; memory: { heapUsed: number } };
    const heapMb = Math.round(stats.memory.heapUsed / 2 ** 20);
    console.error(`preloaded ${preloaded} documents in ${((performance.now() - t) / 1000).toFixed(1)} s (emulator: ${stats.documents} documents, heap ${heapMb} MB)`);
    setups.push({ preloaded, container });
  }
  return setups;
}

let runId = 0;

/** Each worker appends to its own streams, one event at a time, starting a new stream every EVENTS_PER_STREAM events. */
function ownStreams(container: Container) {
  const run = runId++;
  const sproc = container.scripts.storedProcedure(APPEND_SPROC_ID);
  const state = new Map<number, { stream: number; version: number }>();
  return async (w: number) => {
    const s = state.get(w) ?? { stream: 0, version: 0 };
    state.set(w, s);
    if (s.version === EVENTS_PER_STREAM) Object.assign(s, { stream: s.stream + 1, version: 0 });
    const id = `own-${run}-${w}-${s.stream}`;
    const { resource } = await sproc.execute<boolean>(id, [id, s.version, [event]]);
    if (resource === true) s.version++;
    return resource === true;
  };
}

/** All workers append to the same 4 (new) streams; after a version mismatch a worker re-reads the version. */
function contended(container: Container) {
  const run = runId++;
  const sproc = container.scripts.storedProcedure(APPEND_SPROC_ID);
  const versions = new Map<string, number>();
  return async (w: number) => {
    const id = `hot-${run}-${w % 4}`;
    const expected = versions.get(id) ?? 0;
    const { resource } = await sproc.execute<boolean>(id, [id, expected, [event]]);
    if (resource === true) {
      versions.set(id, Math.max(versions.get(id) ?? 0, expected + 1));
      return true;
    }
    const { resources } = await container.items
      .query<number>({ query: "SELECT VALUE MAX(e.stream.version) FROM e WHERE e.stream.id = @s", parameters: [{ name: "@s", value: id }] }, { partitionKey: id })
      .fetchAll();
    versions.set(id, resources[0] ?? 0);
    return false;
  };
}

const MODES = [
  { mode: "sequential", workers: 1, make: ownStreams },
  { mode: "own streams", workers: 16, make: ownStreams },
  { mode: "contended (4 streams)", workers: 16, make: contended },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const { child, url } = await startEmulator();
const client = new CosmosClient({ endpoint: url, key: EMULATOR_KEY });
try {
  const setups = await prepare(client, url);
  await run(child.pid!, { preloaded: setups[0]!.preloaded, mode: "warm-up", workers: 16 }, ownStreams(setups[0]!.container));
  // Rounds alternate between the containers, so that a noisy moment on the machine does not favour one of them.
  const runs: Row[] = [];
  for (let round = 0; round < rounds; round++)
    for (const { mode, workers, make } of MODES)
      for (const { preloaded, container } of setups) runs.push(await run(child.pid!, { preloaded, mode, workers }, make(container)));
  const rows = setups.flatMap(({ preloaded }) =>
    MODES.map(({ mode }) => {
      const mine = runs.filter((r) => r.preloaded === preloaded && r.mode === mode);
      const mid = median(mine.map((r) => r.appendsPerSec));
      const best = Math.max(...mine.map((r) => r.appendsPerSec));
      return { ...mine.find((r) => r.appendsPerSec === mid)!, bestPerSec: best, rounds: mine.map((r) => r.appendsPerSec).join(" ") };
    }),
  );
  console.table(rows);
  // Other work on the machine only ever slows a round down: the best round is the closest to the emulator's capacity,
  // and server CPU per append is the figure least disturbed by it.
  const row = (n: number) => rows.find((r) => r.preloaded === n && r.mode === "own streams")!;
  const [small, large] = [row(preloads[0]!), row(preloads[preloads.length - 1]!)];
  const ratio = small.bestPerSec / large.bestPerSec;
  const describe = (r: typeof small) =>
    `${r.bestPerSec}/s best, ${r.appendsPerSec}/s median, ${r.serverCpuUsPerAppend} µs server CPU per append with ${r.preloaded} documents`;
  console.log(`concurrency 16: ${describe(small)}; ${describe(large)}; ratio of bests ${ratio.toFixed(2)}`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ seconds, rounds, rows, runs, ratio }, null, 2) + "\n");
} finally {
  client.dispose();
  child.kill("SIGTERM");
}
