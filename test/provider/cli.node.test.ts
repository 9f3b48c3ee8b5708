// CLI of the provider simulator (scripts/provider/main.ts) run as a child process: ready line, env, signals, busy port.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { startProviderSimulator } from "../../scripts/provider/server.ts";

const main = fileURLToPath(new URL("../../scripts/provider/main.ts", import.meta.url));
const ready = /^provider simulator listening on http:\/\/127\.0\.0\.1:(\d+)\n/;

type Run = { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> };

function run(args: string[], env: Record<string, string | undefined>): Run {
  const { WEBHOOK_SECRET: _secret, PROVIDER_PORT: _port, ...inherited } = process.env;
  const child = spawn(process.execPath, [main, ...args], { env: { ...inherited, ...env }, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  onTestFinished(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

// Resolves with the port once the ready line is out; rejects if the process exits first.
async function listening(started: Run): Promise<number> {
  const line = new Promise<number>((resolve) => {
    const check = () => {
      const match = ready.exec(started.stdout());
      if (match) resolve(Number(match[1]));
    };
    started.child.stdout?.on("data", check);
    check();
  });
  const exit = started.exited.then((code) => {
    throw new Error(`exited with ${code}: ${started.stderr()}`);
  });
  return Promise.race([line, exit]);
}

describe("the provider CLI", () => {
  it("prints exactly one ready line, serves, and exits 0 on SIGTERM", async () => {
    const started = run(["--port", "0"], { WEBHOOK_SECRET: "s3cret" });
    const port = await listening(started);

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    const unsigned = await fetch(`http://127.0.0.1:${port}/notifications/api/send`, {
      method: "POST",
      body: JSON.stringify({ id: "x", jsonPayload: "{}" }),
    });
    started.child.kill("SIGTERM");

    expect(health.status).toBe(200);
    expect(unsigned.status).toBe(400);
    expect(await started.exited).toBe(0);
    expect(started.stdout()).toBe(`provider simulator listening on http://127.0.0.1:${port}\n`);
    expect(started.stderr()).not.toMatch(/warning/);
  });

  it("reads PROVIDER_PORT, warns without WEBHOOK_SECRET, accepts unsigned notifications, and exits on SIGINT", async () => {
    const started = run([], { PROVIDER_PORT: "0" });
    const port = await listening(started);

    const unsigned = await fetch(`http://127.0.0.1:${port}/notifications/api/send`, {
      method: "POST",
      body: JSON.stringify({ id: "x", jsonPayload: "{}" }),
    });
    started.child.kill("SIGINT");

    expect(port).not.toBe(8082);
    expect(unsigned.status).toBe(200);
    expect(started.stderr()).toMatch(/warning: WEBHOOK_SECRET is not set/);
    expect(await started.exited).toBe(0);
  });

  it("names the port and exits 1 when the port is in use", async () => {
    const busy = await startProviderSimulator({ port: 0 });
    onTestFinished(() => busy.close());

    const started = run(["--port", String(busy.port)], { WEBHOOK_SECRET: "s3cret" });

    expect(await started.exited).toBe(1);
    expect(started.stderr()).toBe(`provider simulator: port ${busy.port} is already in use\n`);
    expect(started.stdout()).toBe("");
  });

  it("exits 1 on an invalid port", async () => {
    const started = run(["--port", "eighty"], { WEBHOOK_SECRET: "s3cret" });

    expect(await started.exited).toBe(1);
    expect(started.stderr()).toMatch(/invalid port "eighty"/);
  });
});
