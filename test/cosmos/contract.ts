// The event-store contract, run against every implementation (Cosmos through the emulator or a real account,
// in Node and in workerd; and the in-memory store).
import { describe, expect, it } from "vitest";
import { eventDocument, EventStoreError, type EventDocument, type EventStore } from "../../src/core/eventStore.ts";

const stream = () => `pay:${crypto.randomUUID()}`;
const events = (streamId: string, from: number, count: number): EventDocument[] =>
  Array.from({ length: count }, (_, i) =>
    eventDocument(streamId, from + i, "PaymentCompleted", { Timestamp: new Date(1_700_000_000_000 + i).toISOString() }, crypto.randomUUID(), {
      correlationId: "c",
      causationId: null,
    }),
  );

export function eventStoreContract(name: string, makeStore: () => EventStore) {
  describe(`the ${name} event store`, () => {
    it("starts a new stream at expected version 0 and loads it back", async () => {
      const store = makeStore();
      const s = stream();
      expect(await store.load(s)).toEqual([]);
      const batch = events(s, 1, 2);
      expect(await store.append(s, 0, batch)).toEqual({ ok: true, version: 2 });
      expect(await store.load(s)).toEqual(batch);
      expect(await store.loadFrom(s, 2)).toEqual([batch[1]]);
      expect(await store.loadFrom(s, 1, 1)).toEqual([batch[0]]);
    });

    it("refuses a stale expected version, writes nothing, and returns the current version", async () => {
      const store = makeStore();
      const s = stream();
      await store.append(s, 0, events(s, 1, 3));
      expect(await store.append(s, 1, events(s, 2, 1))).toEqual({ ok: false, currentVersion: 3 });
      expect(await store.append(s, 0, events(s, 1, 1))).toEqual({ ok: false, currentVersion: 3 });
      expect(await store.append(s, 5, events(s, 6, 1))).toEqual({ ok: false, currentVersion: 3 });
      expect((await store.load(s)).length).toBe(3);
    });

    it("answers a stream's version as appends see it, writing nothing (0 for a new stream)", async () => {
      const store = makeStore();
      const s = stream();
      expect(await store.version(s)).toBe(0);
      await store.append(s, 0, events(s, 1, 3));
      expect(await store.version(s)).toBe(3);
      expect((await store.load(s)).map((d) => d.stream.version)).toEqual([1, 2, 3]);
      expect(await store.append(s, 3, events(s, 4, 1))).toEqual({ ok: true, version: 4 });
    });

    it("gives exactly one winner among 20 concurrent appends at one expected version", async () => {
      const store = makeStore();
      const s = stream();
      await store.append(s, 0, events(s, 1, 1));
      const results = await Promise.all(Array.from({ length: 20 }, () => store.append(s, 1, events(s, 2, 1))));
      expect(results.filter((r) => r.ok)).toEqual([{ ok: true, version: 2 }]);
      expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.currentVersion === 2)).toBe(true);
      expect((await store.load(s)).map((d) => d.stream.version)).toEqual([1, 2]);
    });

    it("writes all events of an append or none", async () => {
      const store = makeStore();
      const s = stream();
      await store.append(s, 0, events(s, 1, 1));
      const broken = [...events(s, 2, 2), ...events(s, 5, 1)];
      await expect(store.append(s, 1, broken)).rejects.toBeInstanceOf(EventStoreError);
      // An id other than "<stream>:<version>" would let two racing appends at one version both commit.
      const misnamed = events(s, 2, 2).map((e, i) => (i === 1 ? { ...e, id: `${s}:${e.eventId}` } : e));
      await expect(store.append(s, 1, misnamed)).rejects.toBeInstanceOf(EventStoreError);
      expect((await store.load(s)).length).toBe(1);
      // At a stale version the version check comes first: a conflict, whatever the batch holds.
      expect(await store.append(s, 0, broken)).toEqual({ ok: false, currentVersion: 1 });
    });

    it("succeeds without writing again when the same events are appended again (a retry after a timeout)", async () => {
      const store = makeStore();
      const s = stream();
      const first = events(s, 1, 2);
      await store.append(s, 0, first);
      expect(await store.append(s, 0, first)).toEqual({ ok: true, version: 2, duplicate: true });
      await store.append(s, 2, events(s, 3, 1));
      expect(await store.append(s, 0, first)).toEqual({ ok: true, version: 2, duplicate: true });
      expect((await store.load(s)).length).toBe(3);
      // Other events at those versions are a conflict, not a retry.
      expect(await store.append(s, 0, events(s, 1, 2))).toEqual({ ok: false, currentVersion: 3 });
    });

    it("loads a 250-event stream in order, across pages (of 100 where the store is given that size)", async () => {
      const store = makeStore();
      const s = stream();
      for (let v = 0; v < 250; v += 50) await store.append(s, v, events(s, v + 1, 50));
      const loaded = await store.load(s);
      expect(loaded.map((d) => d.stream.version)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
      expect((await store.loadFrom(s, 200)).length).toBe(51);
    });

    it("answers its health check", async () => {
      await expect(makeStore().ping()).resolves.toBeUndefined();
    });
  });
}
