// `npm start`: the whole stack locally (data kept in .data/), with the URLs and a curl to try; Ctrl-C stops it all.
import { startStack, type Stack } from "./stack.ts";

function port(name: string, fallback: number): number {
  const text = process.env[name] ?? String(fallback);
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 65535) {
    console.error(`npm start: ${name} must be a port number, not "${text}"`);
    process.exit(1);
  }
  return value;
}

let stack: Stack | undefined;
let stopping = false;
function shutdown(why: string, code = 0) {
  if (stopping) return;
  stopping = true;
  // Interrupted while starting: exiting runs startStack's exit hook, which kills wrangler's process group;
  // the emulator has already journaled every write.
  if (!stack) process.exit(1);
  console.log(`\n${why}: stopping`);
  stack.stop().then(
    () => process.exit(code),
    (e: unknown) => {
      console.error(`npm start: error while stopping: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
// SIGHUP: the terminal closed (its window, an SSH session); SIGQUIT: Ctrl-\. Either would end this process without
// stopping wrangler, which runs in its own process group.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const) process.on(signal, () => shutdown(signal));
// npm runs this under `sh -c`: a SIGTERM sent to npm alone kills that shell and never reaches us. A new parent
// means the one that started us is gone, so stop as well rather than run on as an orphan. And wrangler dev ending on
// its own (a crash, killed) leaves nothing to serve: stop the rest and say so.
const parent = process.ppid;
setInterval(() => {
  const exited = stack?.workerExited();
  if (process.ppid !== parent) shutdown("parent process exited");
  else if (exited) shutdown(`wrangler dev ${exited} (its output: ${stack?.logFile})`, 1);
}, Number(process.env.PARENT_CHECK_MS ?? 500)).unref();

try {
  stack = await startStack({
    apiPort: port("API_PORT", 8787),
    cosmosPort: port("COSMOS_PORT", 8081),
    providerPort: port("PROVIDER_PORT", 8082),
    dataDir: ".data/cosmos",
    persistTo: ".data/wrangler",
  });
} catch (e) {
  console.error(`npm start: ${(e as Error).message}`);
  process.exit(1);
}

const { apiUrl, merchantId, merchantKey } = stack;
console.log(`
Regis Pay is running (wrangler's output: ${stack.logFile})
  API                 ${apiUrl}
  Dashboard           ${apiUrl}/
  OpenAPI             ${apiUrl}/openapi.json
  Cosmos emulator     ${stack.cosmosUrl} (data in .data/cosmos)
  Provider simulator  ${stack.providerUrl}
  Merchant "${merchantId}", local development key (in .local/dev-keys.json): ${merchantKey}

Create a payment:
  curl -s -X POST ${apiUrl}/api/payments -H "Authorization: Bearer ${merchantKey}" -H "Content-Type: application/json" -H "Idempotency-Key: $(uuidgen 2>/dev/null || date +%s%N)" -d '{"amount":86.10,"currency":"GBP"}'
Watch one go through its lifecycle: npm run demo
Ctrl-C stops everything.
`);
