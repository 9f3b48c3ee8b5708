// CLI of the local Cosmos DB emulator: `npm run cosmos -- --port 8081 --data .data/cosmos`.
import { parseArgs } from "node:util";
import { startCosmosEmulator } from "./server.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    data: { type: "string" },
    log: { type: "boolean" },
    "sproc-timeout-ms": { type: "string" },
  },
});

const port = Number(values.port ?? process.env.COSMOS_PORT ?? 8081);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`cosmos emulator: invalid port ${values.port ?? process.env.COSMOS_PORT}`);
  process.exit(1);
}

// A stored procedure may leave a rejected promise nobody handles; report it instead of dying.
process.on("unhandledRejection", (reason) => console.error("cosmos emulator: unhandled rejection in a script:", reason));

let emulator;
try {
  emulator = await startCosmosEmulator({
    port,
    host: values.host ?? "127.0.0.1",
    ...(values.data === undefined ? {} : { dataDir: values.data }),
    log: values.log ?? false,
    ...(values["sproc-timeout-ms"] === undefined ? {} : { sprocTimeoutMs: Number(values["sproc-timeout-ms"]) }),
  });
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === "EADDRINUSE") console.error(`cosmos emulator: port ${port} is already in use`);
  else console.error(`cosmos emulator: cannot start on port ${port}: ${(err as Error).message}`);
  process.exit(1);
}

console.log(`cosmos emulator listening on ${emulator.url}`);

const running = emulator;
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error("cosmos emulator: error while closing", err);
        process.exit(1);
      },
    );
  });
