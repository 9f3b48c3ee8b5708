// The event-store port: streams of stored event documents, appended with optimistic concurrency.
import { uuidFrom } from "./ids.ts";
import { log } from "./log.ts";

/** An event document in the shape Regis Pay stores, plus our additions (`eventId`, `metadata`). STORED FORMAT. */
export type EventDocument = {
  id: string;
  stream: { id: string; version: number };
  eventType: string;
  eventData: Record<string, unknown>;
  /** Absent on Regis Pay's own documents. */
  eventId?: string;
  metadata?: { correlationId: string | null; causationId: string | null };
};

/** `duplicate`: the events' ids were stored at those versions already (a retry), and nothing was written. */
export type AppendResult = { ok: true; version: number; duplicate?: true } | { ok: false; currentVersion: number };

export interface EventStore {
  /** Every event of the stream, in version order (an empty list for a new stream). */
  load(streamId: string): Promise<EventDocument[]>;
  /** Events with version >= fromVersion, in order; `limit` caps how many. */
  loadFrom(streamId: string, fromVersion: number, limit?: number): Promise<EventDocument[]>;
  /**
   * Appends all of `events` (versions expectedVersion+1...) or none. On a version conflict nothing is written and
   * the stream's current version comes back. Re-appending events already stored with the same ids succeeds, as a
   * `duplicate` (what is stored stands: the ids alone are compared).
   */
  append(streamId: string, expectedVersion: number, events: EventDocument[]): Promise<AppendResult>;
  /**
   * The stream's current version as appends see it (0 for a new stream). Reads may come from a replica that lags
   * behind the latest commit; this may not: Cosmos answers it through the stored procedure, on the partition's primary.
   */
  version(streamId: string): Promise<number>;
  /** Resolves when the store answers (the health check). */
  ping(): Promise<void>;
  /**
   * The ids of streams written to, page by page in commit order (Cosmos's change feed), from the beginning or
   * from a continuation; `continuation` null once caught up. Rebuilds read models.
   */
  changedStreams(continuation: string | null, maxItems: number): Promise<{ streamIds: string[]; continuation: string | null }>;
}

export type StoreFailure = "throttled" | "unavailable" | "timeout" | "rejected";

/** Whether a failed append is known not to have committed (refused before it ran). */
export const refused = (e: unknown) => e instanceof EventStoreError && (e.kind === "throttled" || e.kind === "rejected");

/** A store call that failed: an append "throttled" (429) or "rejected" (another 4xx) did not commit; otherwise it may have. */
export class EventStoreError extends Error {
  override readonly name = "EventStoreError";
  readonly kind: StoreFailure;
  readonly retryAfterMs: number | undefined;
  constructor(kind: StoreFailure, message: string, retryAfterMs?: number) {
    super(message);
    this.kind = kind;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The stream from `from` (at most `count` events), read through version `through` at least. A read may come from a
 * replica behind the latest commits (on Cosmos, reads carry no session token): one that stops short of a version known
 * committed is read once more, then refused (unavailable: 503), never served as the whole stream. Unless the stream's
 * version as appends see it is short too: the events are gone (a container restored), and what is held is the truth.
 */
export async function readThrough(store: EventStore, streamId: string, from: number, count: number | undefined, through: number) {
  for (let attempt = 0; ; attempt++) {
    const docs = await store.loadFrom(streamId, from, count);
    const read = docs.at(-1)?.stream.version ?? from - 1;
    if (read >= through) return docs;
    log("warn", "a read is behind a version known committed (a replica behind)", { streamId, from, through, read, attempt });
    if (attempt === 0) continue;
    if ((await store.version(streamId)) < through) return docs;
    throw new EventStoreError("unavailable", `Cosmos DB's read of ${streamId} is behind its commits`);
  }
}

/** The document of one event: id `<streamId>:<version>`, as Regis Pay writes it. */
export function eventDocument(
  streamId: string,
  version: number,
  eventType: string,
  eventData: Record<string, unknown>,
  eventId: string,
  metadata: { correlationId: string | null; causationId: string | null },
): EventDocument {
  return { id: `${streamId}:${version}`, stream: { id: streamId, version }, eventType, eventData, eventId, metadata };
}

/** The event's id; Regis Pay's documents have none, so a stable one is derived from the document id. */
export const eventIdOf = (doc: Pick<EventDocument, "id" | "eventId">) => doc.eventId ?? uuidFrom("event", doc.id);
