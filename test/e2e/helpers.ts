// Helpers of the e2e suite: the shared stack, HTTP calls to it, polling with a deadline, direct Cosmos reads.
import { execFile } from "node:child_process";
import { CosmosClient } from "@azure/cosmos";
import { inject, vi } from "vitest";
import { EMULATOR_KEY } from "../../scripts/cosmos/server.ts";
import { root } from "../../scripts/stack.ts";
import { e2eContainer, e2eDatabase } from "./constants.ts";

export const stack = inject("e2eStack");

export type Json = Record<string, any>;

export async function api(path: string, init: { method?: string; body?: unknown; key?: string | null; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...init.headers };
  const key = init.key === undefined ? stack.merchantKey : init.key;
  if (key) headers.authorization = `Bearer ${key}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    body: init.body === undefined ? null : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as Json };
}

/** Polls GET /api/payments/{id} until its status is `status`. */
export function waitForStatus(id: string, status: string, timeout = 20_000) {
  return vi.waitFor(
    async () => {
      const res = await api(`/api/payments/${id}`);
      if (res.status !== 200 || res.body.status !== status) throw new Error(`payment ${id}: ${res.status} ${res.body?.status}, waiting for ${status}`);
      return res.body;
    },
    { timeout, interval: 100 },
  );
}

export const cosmos = new CosmosClient({ endpoint: stack.cosmosUrl, key: EMULATOR_KEY, connectionPolicy: { enableEndpointDiscovery: false } });
export const events = cosmos.database(e2eDatabase).container(e2eContainer);

/** The stream's documents as stored, in version order. */
export async function storedDocuments(paymentId: string) {
  const streamId = `pay:${paymentId}`;
  const { resources } = await events.items
    .query<Json>({ query: "SELECT * FROM c WHERE c.stream.id = @s ORDER BY c.stream.version", parameters: [{ name: "@s", value: streamId }] }, { partitionKey: streamId })
    .fetchAll();
  return resources;
}

/** `npm run <script>` in the repository, with `env` over this process's own (without the names in `unset`). */
export function npmRun(script: string, env: Record<string, string>, unset: string[] = []) {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !unset.includes(name)));
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile("npm", ["run", "--silent", script], { cwd: root, env: { ...inherited, ...env }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}
