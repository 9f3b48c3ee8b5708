// Idempotent provisioning: database, container (partition key /stream/id) and the current spAppendToStream.
import type { CosmosClient, Resource, StoredProcedureDefinition } from "@azure/cosmos";
import { spAppendToStreamId, spAppendToStreamSource, spAppendToStreamVersion } from "./spAppendToStream.ts";

export type Provisioned = { database: string; container: string; storedProcedure: "created" | "replaced" | "current" | "newer" };

/** The SDK's createIfNotExists reads, then creates: a 409 means another provisioner created it in between. */
const racing = <T>(ensure: () => Promise<T>) => ensure().catch((e: { code?: number }) => (e.code === 409 ? ensure() : Promise.reject(e)));

const versionOf = (body: unknown) => Number(/^\/\/ spAppendToStream v(\d+)\n/.exec(String(body))?.[1] ?? Number.NaN);
const ours = versionOf(`// ${spAppendToStreamVersion}\n`);

/**
 * Safe to run from several places at once, and from an older release: the procedure is replaced only by a newer
 * version of ours. A container keyed otherwise, or a procedure of that name that is not ours (Regis Pay's own, which
 * its callers read as a bool), stops provisioning with the reason instead of being used or overwritten.
 */
export async function provision(client: CosmosClient, database: string, container: string): Promise<Provisioned> {
  const { database: db } = await racing(() => client.databases.createIfNotExists({ id: database }));
  const { container: c, resource } = await racing(() => db.containers.createIfNotExists({ id: container, partitionKey: { paths: ["/stream/id"] } }));
  const paths = resource?.partitionKey?.paths ?? [];
  if (paths.join() !== "/stream/id") throw new Error(`container ${container} is partitioned by ${paths.join(", ") || "nothing"}, not /stream/id: events cannot be appended to it`);
  const definition = { id: spAppendToStreamId, body: spAppendToStreamSource };
  const read = () =>
    c.scripts
      .storedProcedure(spAppendToStreamId)
      .read()
      .then((r) => r.resource)
      .catch((e: { code?: number }): (StoredProcedureDefinition & Resource) | undefined => {
        if (e.code === 404) return undefined;
        throw e;
      });
  // Another provisioner may create or replace it between our read and our write: then the write is refused (409 on
  // create, 412 on a replace of the version we compared) and the versions are compared again.
  const lost = (code: number) => (e: { code?: number }) => (e.code === code ? false : Promise.reject(e));
  for (;;) {
    const existing = await read();
    if (!existing) {
      if (await c.scripts.storedProcedures.create(definition).then(() => true, lost(409))) return { database, container, storedProcedure: "created" };
      continue;
    }
    const installed = versionOf(existing.body);
    if (Number.isNaN(installed))
      throw new Error(`a stored procedure ${spAppendToStreamId} that is not ours (no "// spAppendToStream vN" marker; Regis Pay's own?) is installed: its callers would break if it were replaced; delete it to provision this one`);
    if (installed === ours) return { database, container, storedProcedure: "current" };
    if (installed > ours) return { database, container, storedProcedure: "newer" };
    const ifMatch = { accessCondition: { type: "IfMatch", condition: existing._etag } };
    if (await c.scripts.storedProcedure(spAppendToStreamId).replace(definition, ifMatch).then(() => true, lost(412))) return { database, container, storedProcedure: "replaced" };
  }
}
