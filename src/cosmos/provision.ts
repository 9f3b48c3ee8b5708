// Idempotent provisioning: database, container (partition key /stream/id) and the current spAppendToStream.
import type { CosmosClient } from "@azure/cosmos";
import { spAppendToStreamId, spAppendToStreamSource, spAppendToStreamVersion } from "./spAppendToStream.ts";

export type Provisioned = { database: string; container: string; storedProcedure: "created" | "replaced" | "current" };

export async function provision(client: CosmosClient, database: string, container: string): Promise<Provisioned> {
  const { database: db } = await client.databases.createIfNotExists({ id: database });
  const { container: c } = await db.containers.createIfNotExists({ id: container, partitionKey: { paths: ["/stream/id"] } });
  const definition = { id: spAppendToStreamId, body: spAppendToStreamSource };
  const existing = await c.scripts
    .storedProcedure(spAppendToStreamId)
    .read()
    .then((r) => r.resource)
    .catch((e: { code?: number }) => {
      if (e.code === 404) return undefined;
      throw e;
    });
  if (!existing) {
    await c.scripts.storedProcedures.create(definition);
    return { database, container, storedProcedure: "created" };
  }
  // The version marker in the body decides: an outdated procedure is replaced, a current one left alone.
  if (String(existing.body).startsWith(`// ${spAppendToStreamVersion}\n`)) return { database, container, storedProcedure: "current" };
  await c.scripts.storedProcedure(spAppendToStreamId).replace(definition);
  return { database, container, storedProcedure: "replaced" };
}
