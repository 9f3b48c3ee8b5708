// A port already in use stops the stack before anything starts, with one line naming the port.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { claim, freePort, root, startStack } from "../../scripts/stack.ts";
import { e2eKeys } from "./constants.ts";

let taken: Server;
let port: number;

beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  port = (taken.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

describe("when a port of the stack is already in use", () => {
  it.each([
    ["apiPort", "API"],
    ["cosmosPort", "Cosmos emulator"],
    ["providerPort", "provider simulator"],
  ] as const)("startStack with that %s rejects naming it", async (option, what) => {
    const ports = { apiPort: 0, cosmosPort: 0, providerPort: 0, [option]: port };
    // Should it start after all (the check broken), it is stopped before the test fails, so nothing is left running.
    const started = startStack({ ...ports, keys: e2eKeys, quiet: true });
    onTestFinished(() => started.then((stack) => stack.stop(), () => undefined));
    await expect(started).rejects.toThrow(new Error(`port ${port} (${what}) is already in use`));
  });

  it("npm start prints one line naming it and exits 1", async () => {
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, ["scripts/start.ts"], { cwd: root, env: { ...process.env, API_PORT: String(port), COSMOS_PORT: "0", PROVIDER_PORT: "0" }, timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`npm start: port ${port} (API) is already in use\n`);
  });
});

describe("when the stack picks a port for wrangler to bind later", () => {
  it("picks a free one below the kernel's ephemeral range, which outgoing connections draw from meanwhile", async () => {
    const [ephemeralLow] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    expect(ephemeralLow).toBeGreaterThan(10_000); // this machine kind's (else the stack falls back to any free port)
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort("test"));
    for (const p of ports) {
      expect(p).toBeGreaterThanOrEqual(10_000);
      expect(p).toBeLessThan(ephemeralLow!);
    }
    expect(new Set(ports).size).toBe(ports.length); // none handed out twice
    // Free: it can be bound (and is let go again).
    expect(await claim(ports[0]!, "test")).toBe(ports[0]);
  });
});
