// The event-store contract from Node: against an emulator of its own (the shared one's request counters belong to
// the Workers tests), or a real account when COSMOS_ENDPOINT and COSMOS_KEY are set; either way provisioned into a
// throw-away database that is deleted afterwards.
import { CosmosClient } from "@azure/cosmos";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCosmosEmulator } from "../../scripts/cosmos/server.ts";
import { eventDocument, refused } from "../../src/core/eventStore.ts";
import { CosmosEventStore, lostRace, storeError } from "../../src/cosmos/cosmosEventStore.ts";
import { provision } from "../../src/cosmos/provision.ts";
import { spAppendToStreamId, spAppendToStreamSource, spAppendToStreamVersion } from "../../src/cosmos/spAppendToStream.ts";
import { emulatorKey } from "../setup/constants.ts";
import { eventStoreContract } from "./contract.ts";

const real = process.env.COSMOS_ENDPOINT && process.env.COSMOS_KEY;
const emulator = real ? undefined : await startCosmosEmulator({ port: 0 });
const endpoint = real ? process.env.COSMOS_ENDPOINT! : emulator!.url;
const key = real ? process.env.COSMOS_KEY! : emulatorKey;
const database = `contract-${crypto.randomUUID().slice(0, 8)}`;
const client = new CosmosClient({ endpoint, key, connectionPolicy: { enableEndpointDiscovery: Boolean(real) } });

beforeAll(async () => {
  await provision(client, database, "events");
});
afterAll(async () => {
  await client.database(database).delete();
  client.dispose();
  await emulator?.close();
});

eventStoreContract(real ? "Cosmos (real account, Node)" : "Cosmos (emulator, Node)", () => new CosmosEventStore(client.database(database).container("events"), { pageSize: 100 }));

describe("provisioning", () => {
  const procedure = (container: string) => client.database(database).container(container).scripts.storedProcedure(spAppendToStreamId);
  const install = async (container: string, body: string) => {
    await procedure(container).delete();
    await client.database(database).container(container).scripts.storedProcedures.create({ id: spAppendToStreamId, body });
  };
  const older = spAppendToStreamSource.replace(`// ${spAppendToStreamVersion}`, "// spAppendToStream v1");
  const newer = spAppendToStreamSource.replace(`// ${spAppendToStreamVersion}`, "// spAppendToStream v999");

  it("may run from several places at once", async () => {
    const container = `p-${crypto.randomUUID().slice(0, 8)}`;
    const done = await Promise.all([1, 2, 3].map(() => provision(client, database, container)));
    expect(done.map((d) => d.storedProcedure).sort()).toEqual(["created", "current", "current"]);
    expect((await procedure(container).read()).resource?.body).toBe(spAppendToStreamSource);
  });

  it("replaces an older version of ours, leaves a newer one, and refuses one that is not ours", async () => {
    const container = `p-${crypto.randomUUID().slice(0, 8)}`;
    await provision(client, database, container);
    await install(container, older);
    expect((await provision(client, database, container)).storedProcedure).toBe("replaced");
    expect((await procedure(container).read()).resource?.body).toBe(spAppendToStreamSource);
    await install(container, newer);
    expect((await provision(client, database, container)).storedProcedure).toBe("newer");
    expect((await procedure(container).read()).resource?.body).toBe(newer);
    const regisPays = "function spAppendToStream(streamId, expectedVersion, events) { getContext().getResponse().setBody(true); }";
    await install(container, regisPays);
    await expect(provision(client, database, container)).rejects.toThrow(/not ours/);
    expect((await procedure(container).read()).resource?.body).toBe(regisPays);
  });

  it("refuses a container partitioned by anything but /stream/id", async () => {
    const container = `p-${crypto.randomUUID().slice(0, 8)}`;
    await client.database(database).containers.create({ id: container, partitionKey: { paths: ["/id"] } });
    await expect(provision(client, database, container)).rejects.toThrow(/partitioned by \/id, not \/stream\/id/);
  });
});

describe("an append that loses a race", () => {
  it("answers a conflict, not an error, when its write collides with another writer's document at that version", async () => {
    const container = client.database(database).container("events");
    const store = new CosmosEventStore(container);
    const streamId = `race-${crypto.randomUUID()}`;
    const at = (version: number) => eventDocument(streamId, version, "PaymentCompleted", { Timestamp: new Date().toISOString() }, crypto.randomUUID(), { correlationId: null, causationId: null });
    expect(await store.append(streamId, 0, [at(1)])).toEqual({ ok: true, version: 1 });
    // Another writer's document at version 2, being written: its version is not readable yet (no stream.version).
    await container.items.create({ id: `${streamId}:2`, stream: { id: streamId } });
    expect(await store.append(streamId, 1, [at(2)])).toEqual({ ok: false, currentVersion: 1 });
  });

  it("takes a 449 (a write-write conflict) or a script's 409 as the lost race, and nothing else", () => {
    expect([lostRace({ code: 449 }), lostRace({ code: 400, substatus: 409 })]).toEqual([true, true]);
    expect([lostRace({ code: 400 }), lostRace({ code: 409 }), lostRace({ code: 400, substatus: 404 }), lostRace(new Error("x"))]).toEqual([false, false, false, false]);
  });
});

describe("a failed Cosmos request", () => {
  it("is known not to have committed only when refused: a 429 after the client's own waits, or another 4xx", () => {
    expect(storeError({ code: 429 }).kind).toBe("throttled");
    for (const code of [400, 404, 409, 413]) expect(refused(storeError({ code }))).toBe(true);
    for (const code of [408, 500, 502, 503, 504]) expect(refused(storeError({ code }))).toBe(false);
    expect(refused(storeError({ name: "TimeoutError" }))).toBe(false);
    expect(refused(storeError(new Error("socket hang up")))).toBe(false);
  });
});
