// Vitest global setup: a Cosmos emulator (in memory, provisioned) and a provider simulator on free ports,
// provided to the test projects, and stopped when the run ends.
import type { TestProject } from "vitest/node";
import { CosmosClient } from "@azure/cosmos";
import { startCosmosEmulator } from "../../scripts/cosmos/server.ts";
import { startProviderSimulator } from "../../scripts/provider/server.ts";
import { provision } from "../../src/cosmos/provision.ts";
import { emulatorKey, testDatabase, testContainer, webhookSecret } from "./constants.ts";

declare module "vitest" {
  export interface ProvidedContext {
    cosmosEndpoint: string;
    providerUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const cosmos = await startCosmosEmulator({ port: 0 });
  const simulator = await startProviderSimulator({ port: 0, webhookSecret });
  const client = new CosmosClient({ endpoint: cosmos.url, key: emulatorKey, connectionPolicy: { enableEndpointDiscovery: false } });
  await provision(client, testDatabase, testContainer);
  client.dispose();
  project.provide("cosmosEndpoint", cosmos.url);
  project.provide("providerUrl", simulator.url);
  return async () => {
    await simulator.close();
    await cosmos.close();
  };
}
