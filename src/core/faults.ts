// Seeded fault injection for the reliability suite: a repeatable coin per (seed, names), never used in production.
import { createHash } from "node:crypto";
import { log } from "./log.ts";

/** True for a `rate` share of name tuples, the same answer every time for the same seed and names. */
export function faultFires(seed: string, rate: number, ...names: (string | number)[]) {
  if (rate <= 0) return false;
  const h = createHash("sha256").update(JSON.stringify([seed, ...names])).digest();
  const fires = h.readUInt32BE(0) / 2 ** 32 < rate;
  if (fires) log("warn", "fault injected", { kind: String(names[0]), detail: names.slice(1).join(" ") });
  return fires;
}
