// The relay's batches within Cloudflare's limits on one sendBatch: 100 messages, 256 KB in all.
import { describe, expect, it } from "vitest";
import { batches } from "../../src/queue/message.ts";

const message = (bytes: number, i: number) => ({ body: { i, text: "é".repeat(bytes / 2) } }); // é: 2 bytes in UTF-8
const size = (batch: { body: unknown }[]) => batch.reduce((sum, m) => sum + Buffer.byteLength(JSON.stringify(m.body)) + 100, 0);

describe("batches", () => {
  it("splits by count: 250 small messages go as 100, 100 and 50, in order", () => {
    const split = batches(Array.from({ length: 250 }, (_, i) => message(10, i)));
    expect(split.map((b) => b.length)).toEqual([100, 100, 50]);
    expect(split.flat().map((m) => m.body.i)).toEqual(Array.from({ length: 250 }, (_, i) => i));
  });

  it("splits by bytes, counting UTF-8 and the queue's 100 bytes per message: 100 messages of 6 KB never make a batch over 256 KB", () => {
    const split = batches(Array.from({ length: 100 }, (_, i) => message(6_000, i)));
    expect(split.length).toBeGreaterThan(2);
    for (const batch of split) expect(size(batch)).toBeLessThanOrEqual(256_000);
    expect(split.flat().map((m) => m.body.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("sends a message larger than a batch's share alone, and none for no messages", () => {
    expect(batches([message(10, 0), message(300_000, 1), message(10, 2)]).map((b) => b.map((m) => m.body.i))).toEqual([[0], [1], [2]]);
    expect(batches([])).toEqual([]);
  });
});
