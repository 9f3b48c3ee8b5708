// Connects the emulator's test suites to a Cosmos account: the real one named by COSMOS_ENDPOINT and COSMOS_KEY, else a fresh local emulator.
import { randomUUID } from "node:crypto";
import { CosmosClient, type Container, type Database } from "@azure/cosmos";
import { EMULATOR_KEY, startCosmosEmulator, type CosmosEmulator, type CosmosEmulatorOptions } from "../../scripts/cosmos/server.ts";

export const realAccount = Boolean(process.env.COSMOS_ENDPOINT && process.env.COSMOS_KEY);

export type Harness = {
  client: CosmosClient;
  database: Database;
  /** Undefined against a real account. */
  emulator: CosmosEmulator | undefined;
  /** A new container with a unique id, partitioned on `path`. */
  container(path?: string): Promise<Container>;
  close(): Promise<void>;
};

export const uniqueId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

export async function connect(options: CosmosEmulatorOptions = {}): Promise<Harness> {
  const emulator = realAccount ? undefined : await startCosmosEmulator(options);
  const client = emulator
    ? new CosmosClient({ endpoint: emulator.url, key: EMULATOR_KEY })
    : new CosmosClient({ endpoint: process.env.COSMOS_ENDPOINT!, key: process.env.COSMOS_KEY! });
  const { database } = await client.databases.createIfNotExists({ id: uniqueId("emulator-contract") });
  return {
    client,
    database,
    emulator,
    async container(path = "/pk") {
      const { container } = await database.containers.createIfNotExists({ id: uniqueId("c"), partitionKey: { paths: [path] } });
      return container;
    },
    async close() {
      try {
        await database.delete();
      } finally {
        client.dispose();
        await emulator?.close();
      }
    },
  };
}

/** Polls `probe` until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Calls the emulator's control plane. */
export async function control<T = unknown>(emulator: CosmosEmulator, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${emulator.url}/_emulator/${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  return { status: res.status, body: (await res.json()) as T };
}
