// The event store in memory: same contract as Cosmos, for unit tests and as the benchmark's ceiling.
import { EventStoreError, type AppendResult, type EventDocument, type EventStore } from "./eventStore.ts";

export class MemoryEventStore implements EventStore {
  readonly streams = new Map<string, EventDocument[]>();

  async load(streamId: string) {
    return this.loadFrom(streamId, 1);
  }

  async loadFrom(streamId: string, fromVersion: number, limit = Number.POSITIVE_INFINITY) {
    const docs = (this.streams.get(streamId) ?? []).filter((d) => d.stream.version >= fromVersion).slice(0, limit);
    return structuredClone(docs);
  }

  async ping() {}

  async version(streamId: string) {
    return this.streams.get(streamId)?.length ?? 0;
  }

  async changedStreams(continuation: string | null) {
    return { streamIds: continuation ? [] : [...this.streams.keys()], continuation: null };
  }

  async append(streamId: string, expectedVersion: number, events: EventDocument[]): Promise<AppendResult> {
    const stream = this.streams.get(streamId) ?? [];
    const current = stream.length;
    const last = expectedVersion + events.length;
    if (current === expectedVersion) {
      events.forEach((e, i) => {
        // As the stored procedure does, once the version matches: a malformed batch is refused whole.
        if (e.stream.id !== streamId || e.stream.version !== expectedVersion + i + 1 || e.id !== `${streamId}:${e.stream.version}`)
          throw new EventStoreError("rejected", `event ${i} is not at the next version of ${streamId}`);
      });
      this.streams.set(streamId, [...stream, ...structuredClone(events)]);
      return { ok: true, version: last };
    }
    const retried =
      events.length > 0 && current >= last && events.every((e, i) => e.eventId && stream[expectedVersion + i]?.eventId === e.eventId);
    return retried ? { ok: true, version: last, duplicate: true } : { ok: false, currentVersion: current };
  }
}
