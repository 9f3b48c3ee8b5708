// The event store on Azure Cosmos DB: one partition per stream (/stream/id), appends through spAppendToStream.
import { ChangeFeedStartFrom, CosmosClient, StatusCodes, type Container, type ErrorResponse } from "@azure/cosmos";
import { createHttpHeaders, type HttpClient } from "@azure/core-rest-pipeline";
import { EventStoreError, type AppendResult, type EventDocument, type EventStore } from "../core/eventStore.ts";
import { spAppendToStreamId } from "./spAppendToStream.ts";

export type CosmosSettings = {
  endpoint: string;
  key: string;
  database: string;
  container: string;
  /** Per-request timeout; a timed-out append may still have committed (the next append at that version finds out: a conflict, and the tail is read). */
  requestTimeoutMs: number;
  /** How many times the client retries a 429, honouring the server's x-ms-retry-after-ms, and for how long in all. */
  throttleRetries: number;
  throttleMaxWaitSeconds: number;
};

/**
 * The runtime's fetch as the client's transport. The SDK's own (for browsers, which a Worker resembles) pipes every
 * response through a stream transform to report download progress, which nothing here reads.
 */
const fetchTransport: HttpClient = {
  async sendRequest(request) {
    try {
      const res = await fetch(request.url, { method: request.method, headers: request.headers.toJSON(), body: request.body as string | undefined, signal: request.abortSignal as AbortSignal | undefined });
      return { request, status: res.status, headers: createHttpHeaders(Object.fromEntries(res.headers)), bodyAsText: await res.text() };
    } catch (e) {
      // A timeout (the SDK's abort) stays an AbortError; anything else is a failure to send, as the SDK names it.
      if ((e as Error).name === "AbortError") throw e;
      throw Object.assign(new Error(`Error sending request: ${(e as Error).message}`), { code: "REQUEST_SEND_ERROR" });
    }
  },
};

export function cosmosClient(s: CosmosSettings) {
  return new CosmosClient({
    endpoint: s.endpoint,
    httpClient: fetchTransport,
    key: s.key,
    // Endpoint discovery would follow the account's advertised regional addresses; locally there is only one.
    connectionPolicy: {
      enableEndpointDiscovery: false,
      requestTimeout: s.requestTimeoutMs,
      retryOptions: { maxRetryAttemptCount: s.throttleRetries, maxWaitTimeInSeconds: s.throttleMaxWaitSeconds },
    },
  });
}

const systemProperties = ["_rid", "_self", "_etag", "_attachments", "_ts", "_lsn"];

/** A stored document without Cosmos's system properties. */
export function withoutSystemProperties(doc: Record<string, unknown>): EventDocument {
  const copy = { ...doc };
  for (const p of systemProperties) delete copy[p];
  return copy as EventDocument;
}

/** Maps a Cosmos failure to a typed store error; 429s arrive here only after the client's own retries. */
export function storeError(e: unknown): EventStoreError {
  const err = e as Partial<ErrorResponse> & { name?: string };
  const code = Number(err.code);
  if (code === 429) return new EventStoreError("throttled", "Cosmos DB is throttling requests", err.retryAfterInMs ?? undefined);
  if (code === 503 || code === 500 || code === 502) return new EventStoreError("unavailable", `Cosmos DB unavailable (${code})`);
  if (code === 408 || err.name === "TimeoutError" || err.name === "AbortError") return new EventStoreError("timeout", "Cosmos DB request timed out");
  // A 4xx refused the request before it did anything; any other status leaves the outcome unknown.
  if (code >= 400 && code < 500) return new EventStoreError("rejected", `Cosmos DB answered ${code}: ${err.message ?? ""}`.trim());
  if (Number.isFinite(code)) return new EventStoreError("unavailable", `Cosmos DB answered ${code}: ${err.message ?? ""}`.trim());
  return new EventStoreError("unavailable", `Cosmos DB unreachable: ${err.message ?? String(e)}`);
}

/**
 * The losing side of a race on a stream's next version, which wrote nothing: Cosmos runs executions in a partition
 * concurrently (snapshot isolation), so the loser's create collides on the event's id, a 409 inside the script that
 * Cosmos answers as 400 with that sub-status, or its transaction conflicts (449, retry with).
 */
export function lostRace(e: unknown) {
  const err = e as Partial<ErrorResponse>;
  return Number(err.code) === 449 || (Number(err.code) === 400 && Number(err.substatus) === 409);
}

async function guarded<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw storeError(e);
  }
}

export class CosmosEventStore implements EventStore {
  readonly container: Container;
  /** Documents per page when a stream is read (Cosmos's own limit is 1,000 or 4 MB). */
  private readonly pageSize: number;

  constructor(container: Container, { pageSize = 1000 } = {}) {
    this.container = container;
    this.pageSize = pageSize;
  }

  static connect(s: CosmosSettings) {
    return new CosmosEventStore(cosmosClient(s).database(s.database).container(s.container));
  }

  async load(streamId: string) {
    return this.loadFrom(streamId, 1);
  }

  async loadFrom(streamId: string, fromVersion: number, limit?: number) {
    const query = {
      query: `SELECT ${limit ? `TOP ${Math.trunc(limit)} ` : ""}* FROM c WHERE c.stream.id = @streamId AND c.stream.version >= @from ORDER BY c.stream.version`,
      parameters: [
        { name: "@streamId", value: streamId },
        { name: "@from", value: fromVersion },
      ],
    };
    const { resources } = await guarded(() =>
      this.container.items.query<Record<string, unknown>>(query, { partitionKey: streamId, maxItemCount: this.pageSize }).fetchAll(),
    );
    return resources.map(withoutSystemProperties);
  }

  async ping() {
    await guarded(() => this.container.read());
  }

  async changedStreams(continuation: string | null, maxItems: number) {
    const iterator = this.container.items.getChangeFeedIterator<{ stream?: { id?: string } }>({
      changeFeedStartFrom: continuation ? ChangeFeedStartFrom.Continuation(continuation) : ChangeFeedStartFrom.Beginning(),
      maxItemCount: maxItems,
    });
    const page = await guarded(() => iterator.readNext());
    if (page.statusCode === StatusCodes.NotModified || page.result.length === 0) return { streamIds: [], continuation: null };
    const streamIds = [...new Set(page.result.flatMap((d) => (d.stream?.id ? [d.stream.id] : [])))];
    return { streamIds, continuation: page.continuationToken };
  }

  async append(streamId: string, expectedVersion: number, events: EventDocument[]): Promise<AppendResult> {
    let resource: AppendResult | undefined;
    try {
      ({ resource } = await this.container.scripts.storedProcedure(spAppendToStreamId).execute<AppendResult>(streamId, [streamId, expectedVersion, JSON.stringify(events)]));
    } catch (e) {
      // A conflict, as when the script itself finds the stream moved on: the version appends see now is asked.
      if (lostRace(e) && events.length > 0) return { ok: false, currentVersion: await this.version(streamId) };
      throw storeError(e);
    }
    if (!resource || typeof resource.ok !== "boolean") throw new EventStoreError("unavailable", "spAppendToStream answered an unexpected body (it ran: the outcome is unknown): is an outdated version installed?");
    if (!resource.ok) return { ok: false, currentVersion: resource.currentVersion };
    return resource.duplicate === true ? { ok: true, version: resource.version, duplicate: true } : { ok: true, version: resource.version };
  }

  /** An append of nothing at a version no stream has: the stored procedure writes nothing and answers the current one. */
  async version(streamId: string) {
    const result = await this.append(streamId, -1, []);
    if (result.ok) throw new EventStoreError("unavailable", "spAppendToStream accepted an append at version -1: is an outdated version installed?");
    return result.currentVersion;
  }
}
