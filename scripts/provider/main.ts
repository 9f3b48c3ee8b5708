// CLI of the provider simulator: `npm run provider -- --port 8082` (env PROVIDER_PORT, WEBHOOK_SECRET).
import { parseArgs } from "node:util";
import { startProviderSimulator } from "./server.ts";

function fail(message: string): never {
  process.stderr.write(`provider simulator: ${message}\n`);
  process.exit(1);
}

let options: { port?: string; host?: string };
try {
  options = parseArgs({ options: { port: { type: "string" }, host: { type: "string" } } }).values;
} catch (error) {
  fail(`${(error as Error).message}; usage: --port <number> [--host <address>]`);
}

const portText = options.port ?? process.env.PROVIDER_PORT ?? "8082";
const port = Number(portText);
if (!/^\d+$/.test(portText) || port > 65535) fail(`invalid port "${portText}"`);
const host = options.host ?? "127.0.0.1";

const webhookSecret = process.env.WEBHOOK_SECRET || undefined;
if (!webhookSecret) {
  process.stderr.write("provider simulator: warning: WEBHOOK_SECRET is not set; notifications are accepted unsigned\n");
}

try {
  const simulator = await startProviderSimulator({ port, host, webhookSecret, log: true });
  process.stdout.write(`provider simulator listening on ${simulator.url}\n`);
  const stop = () => void simulator.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") fail(`port ${port} is already in use`);
  fail(`cannot listen on ${host}:${port}: ${(error as Error).message}`);
}
