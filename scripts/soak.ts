// The soak run: the reliability scenario at scale, then a load check (1,000 payments created at once all complete,
// none lost or duplicated). Usage: npm run soak -- --payments 5000 --seed 7 [--load 1000]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CosmosClient } from "@azure/cosmos";
import { CosmosEventStore } from "../src/cosmos/cosmosEventStore.ts";
import { chaosVars, runChaos } from "./chaos.ts";
import { EMULATOR_KEY } from "./cosmos/server.ts";
import { createPayment, pool, waitAll } from "./load.ts";
import { startStack } from "./stack.ts";

const { values } = parseArgs({ options: { payments: { type: "string", default: "5000" }, seed: { type: "string" }, load: { type: "string", default: "1000" } } });
const seed = Number(values.seed ?? Math.floor(Math.random() * 1_000_000));
const payments = Number(values.payments);
const state = mkdtempSync(join(tmpdir(), "regis-soak-"));
const logFile = join(state, "worker.log");
const stack = await startStack({ apiPort: 0, cosmosPort: 0, providerPort: 0, persistTo: state, wranglerEnv: "load", quiet: true, logFile, vars: chaosVars(seed) });
const interrupted = () => void stack.stop().finally(() => process.exit(130));
process.once("SIGINT", interrupted).once("SIGTERM", interrupted);

let failed = false;
try {
  console.log(`soak: seed ${seed} (replay: npm run soak -- --payments ${payments} --seed ${seed})`);
  const report = await runChaos(
    { ...stack, database: "regis-pay", container: "events", logFiles: () => [logFile], restartWorker: (vars) => stack.restartWorker(vars) },
    { seed, payments, concurrency: 32, deadlineMs: 900_000, log: (line) => console.log(line) },
  );
  console.log(JSON.stringify(report, null, 2));
  if (report.violations.length > 0) failed = true;

  // Load: payments created all at once all complete, each exactly once, with the service's own timers and logging
  // (the chaos run's are shortened for faults) and no fault injection.
  await stack.restartWorker(Object.fromEntries(Object.keys(chaosVars(seed)).map((name) => [name, undefined])));
  const n = Number(values.load);
  const started = Date.now();
  const client = { apiUrl: stack.apiUrl, key: stack.merchantKey };
  const created = await pool(n, 64, (i) => createPayment(client, 100 + (i % 1000) / 100));
  const done = await waitAll(client, created.map((p) => p.id), (p) => p.status === "completed", 900_000, 200);
  const cosmos = new CosmosClient({ endpoint: stack.cosmosUrl, key: EMULATOR_KEY, connectionPolicy: { enableEndpointDiscovery: false } });
  const store = new CosmosEventStore(cosmos.database("regis-pay").container("events"));
  let wrong = 0;
  await pool(done.length, 16, async (i) => {
    const types = (await store.load(`pay:${done[i]!.id}`)).map((d) => d.eventType).join(",");
    if (types !== "PaymentInitiated,PaymentCreated,PaymentSettled,PaymentCompleted") wrong++;
  });
  cosmos.dispose();
  const unique = new Set(created.map((p) => p.id)).size;
  console.log(`load: ${n} payments created at once, ${done.length} completed, ${unique} distinct, ${wrong} with a history other than the four events, in ${Math.round((Date.now() - started) / 1000)} s`);
  if (done.length !== n || unique !== n || wrong > 0) failed = true;
} catch (e) {
  console.error(`soak failed (seed ${seed}): ${(e as Error).message}`);
  failed = true;
} finally {
  await stack.stop();
  // A failed run keeps the Worker's log for its request ids; a passed one leaves nothing behind.
  if (failed) console.error(`the Worker's log: ${logFile}`);
  else rmSync(state, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
