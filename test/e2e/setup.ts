// Global setup of the e2e project: ONE stack (emulator, simulator, wrangler dev) shared by every e2e file;
// at the end it is stopped and nothing it started may still run or listen.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startStack, type Stack } from "../../scripts/stack.ts";
import { e2eContainer, e2eDatabase, e2eKeys, e2eVars } from "./constants.ts";

/** The running stack as the test files see it: addresses and keys (stop() and restartWorker() stay here, in the process that started it). */
export type E2eStack = Omit<Stack, "stop" | "restartWorker" | "workerExited">;

declare module "vitest" {
  export interface ProvidedContext {
    e2eStack: E2eStack;
  }
}

/** Processes in wrangler's process group (its workerd children stay in it even when orphaned). Linux /proc. */
export function groupMembers(pgid: number): string[] {
  const members: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid) members.push(`${pid} ${stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))}`);
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

const listening = (url: string) =>
  new Promise<boolean>((resolve) => {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

/** What the stopped stack left behind: processes of wrangler's group, listeners on its ports. */
export async function leftovers(stack: E2eStack): Promise<string[]> {
  const found = groupMembers(stack.wranglerPid).map((p) => `process ${p}`);
  for (const url of [stack.apiUrl, stack.cosmosUrl, stack.providerUrl]) if (await listening(url)) found.push(`listener on ${url}`);
  return found;
}

export default async function setup(project: TestProject) {
  const persistTo = mkdtempSync(join(tmpdir(), "regis-pay-e2e-"));
  const stack = await startStack({
    apiPort: 0,
    cosmosPort: 0,
    providerPort: 0,
    persistTo,
    database: e2eDatabase,
    container: e2eContainer,
    keys: e2eKeys,
    vars: e2eVars,
    quiet: true,
    logFile: ".local/logs/e2e.log",
  }).catch((e: unknown) => {
    rmSync(persistTo, { recursive: true, force: true });
    throw e;
  });
  const { stop, restartWorker: _, workerExited: __, ...rest } = stack;
  const provided: E2eStack = { ...rest, wranglerPid: stack.wranglerPid };
  try {
    project.provide("e2eStack", provided);
  } catch (e) {
    await stop();
    throw e;
  }
  return async () => {
    try {
      await stop();
    } finally {
      rmSync(persistTo, { recursive: true, force: true });
    }
    const left = await leftovers(provided);
    if (left.length > 0) throw new Error(`the e2e stack left things running after stop(): ${left.join("; ")}`);
  };
}
