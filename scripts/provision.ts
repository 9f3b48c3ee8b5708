// `npm run provision`: creates the database, the container and the current stored procedure (local emulator or Azure).
import { CosmosClient } from "@azure/cosmos";
import { provision } from "../src/cosmos/provision.ts";
import { spAppendToStreamId } from "../src/cosmos/spAppendToStream.ts";
import { EMULATOR_KEY } from "./cosmos/server.ts";

const endpoint = process.env.COSMOS_ENDPOINT ?? "http://127.0.0.1:8081";
const key = process.env.COSMOS_KEY ?? EMULATOR_KEY;
const database = process.env.COSMOS_DATABASE ?? "regis-pay";
const container = process.env.COSMOS_CONTAINER ?? "events";

// Azure (https) keeps the SDK's defaults; a local emulator over http must not be rediscovered at an https address.
const client = endpoint.startsWith("https:")
  ? new CosmosClient({ endpoint, key })
  : new CosmosClient({ endpoint, key, connectionPolicy: { enableEndpointDiscovery: false } });

const exists = (read: Promise<unknown>) =>
  read.then(
    () => true,
    (e: { code?: number }) => {
      if (e.code === 404) return false;
      throw e;
    },
  );

try {
  const db = client.database(database);
  const before = { database: await exists(db.read()), container: await exists(db.container(container).read()) };
  const done = await provision(client, database, container);
  const said = (existed: boolean) => (existed ? "current" : "created");
  console.log(`provisioned ${endpoint}`);
  console.log(`  database ${database}: ${said(before.database)}`);
  console.log(`  container ${container} (partition key /stream/id, checked): ${said(before.container)}`);
  console.log(`  stored procedure ${spAppendToStreamId}: ${done.storedProcedure}`);
} catch (e) {
  console.error(`provision: ${endpoint}: ${(e as Error).message.split("\n")[0] || String((e as { code?: unknown }).code)}`);
  process.exitCode = 1;
} finally {
  client.dispose();
}
