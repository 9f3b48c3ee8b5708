// A process that started a stack and is killed outright (SIGKILL: no exit handler runs, as when CI cancels a job)
// leaves nothing behind: wrangler's process group and the secrets' env file go with it.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, it, onTestFinished, vi } from "vitest";
import { root } from "../../scripts/stack.ts";
import { e2eKeys } from "./constants.ts";
import { groupMembers } from "./setup.ts";

it("ends wrangler's process group and removes the env file once the process that started the stack is killed", async () => {
  const persistTo = mkdtempSync(join(tmpdir(), "regis-orphans-"));
  onTestFinished(() => rmSync(persistTo, { recursive: true, force: true }));
  const starter = `
    const { startStack } = await import(${JSON.stringify(resolve(root, "scripts/stack.ts"))});
    const stack = await startStack({ apiPort: 0, cosmosPort: 0, providerPort: 0, quiet: true, keys: ${JSON.stringify(e2eKeys)},
      persistTo: ${JSON.stringify(persistTo)}, logFile: ${JSON.stringify(join(persistTo, "worker.log"))} });
    console.log(JSON.stringify({ wranglerPid: stack.wranglerPid, apiUrl: stack.apiUrl }));`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", starter], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  onTestFinished(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")));
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  await vi.waitFor(() => expect(out).toContain("\n"), { timeout: 120_000, interval: 100 });
  const { wranglerPid, apiUrl } = JSON.parse(out) as { wranglerPid: number; apiUrl: string };
  const envFile = resolve(root, ".local", "stacks", `${new URL(apiUrl).port}.env`);
  expect(groupMembers(wranglerPid).length).toBeGreaterThan(0);
  expect(existsSync(envFile)).toBe(true);

  child.kill("SIGKILL");
  await vi.waitFor(() => expect({ left: groupMembers(wranglerPid), envFile: existsSync(envFile) }).toEqual({ left: [], envFile: false }), { timeout: 20_000, interval: 100 });
}, 180_000);
