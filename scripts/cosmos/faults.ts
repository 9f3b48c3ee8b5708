// Request counters by operation kind and the fault rules (429, 503, delay) the control plane injects.
import { seededRandom } from "../random.ts";

export const KINDS = ["sproc", "query", "read", "write", "changefeed", "batch", "other"] as const;
export type Kind = (typeof KINDS)[number];

const MODES = ["429", "503", "delay", "stale"] as const;
type Mode = (typeof MODES)[number];

export type FaultRule = {
  id: number;
  kind: Kind | "any";
  mode: Mode;
  count: number | undefined;
  fraction: number | undefined;
  delayMs: number;
  retryAfterMs: number;
  /** stale: how many of the partition's newest documents a query does not see (as a replica behind would). */
  documents: number;
  /** Only requests naming this partition key (its value) match; any request without it. */
  partition: string | undefined;
  seed: number;
  fired: number;
};

export type FaultDecision = { delayMs: number; error: FaultRule | undefined; staleDocuments: number };

export class InvalidRule extends Error {}

function partitionRule(v: unknown) {
  if (v !== undefined && (typeof v !== "string" || v === "")) throw new InvalidRule("partition must be a partition key's value");
  return v;
}

const zero = () => Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;

export class Faults {
  counters = zero();
  /** The same counts per partition key, for the requests that name one (a test of one payment reads its own). */
  private byPartition = new Map<string, Record<Kind, number>>();
  private rules: { rule: FaultRule; next: () => number }[] = [];
  private nextId = 1;

  resetCounters() {
    for (const k of KINDS) this.counters[k] = 0;
    this.byPartition.clear();
  }

  countersOf(partition: string) {
    return this.byPartition.get(partition) ?? zero();
  }

  add(input: unknown): FaultRule {
    const o = (input ?? {}) as Record<string, unknown>;
    const kind = o.kind as FaultRule["kind"];
    const mode = o.mode as Mode;
    if (kind !== "any" && !KINDS.includes(kind as Kind)) throw new InvalidRule(`kind must be one of any, ${KINDS.join(", ")}`);
    if (!MODES.includes(mode)) throw new InvalidRule(`mode must be one of ${MODES.join(", ")}`);
    if (mode === "stale" && kind !== "query") throw new InvalidRule("mode stale is for kind query");
    const num = (name: string, ok: (n: number) => boolean) => {
      const v = o[name];
      if (v === undefined) return undefined;
      if (typeof v !== "number" || !ok(v)) throw new InvalidRule(`${name} is out of range`);
      return v;
    };
    const rule: FaultRule = {
      id: this.nextId++,
      kind,
      mode,
      count: num("count", (n) => Number.isInteger(n) && n > 0),
      fraction: num("fraction", (n) => n >= 0 && n <= 1),
      delayMs: num("delayMs", (n) => n >= 0) ?? 100,
      retryAfterMs: num("retryAfterMs", (n) => n >= 0) ?? 50,
      documents: num("documents", (n) => Number.isInteger(n) && n > 0) ?? 1,
      partition: partitionRule(o.partition),
      seed: num("seed", Number.isInteger) ?? 1,
      fired: 0,
    };
    this.rules.push({ rule, next: seededRandom(rule.seed) });
    return rule;
  }

  clear() {
    this.rules = [];
  }

  list(): (FaultRule & { active: boolean })[] {
    return this.rules.map(({ rule }) => ({ ...rule, active: rule.count === undefined || rule.fired < rule.count }));
  }

  /** Counts the request and decides its faults: delays add up; the first error rule that fires wins. */
  decide(kind: Kind, partition?: string): FaultDecision {
    this.counters[kind]++;
    if (partition !== undefined) {
      if (!this.byPartition.has(partition)) this.byPartition.set(partition, zero());
      this.byPartition.get(partition)![kind]++;
    }
    const decision: FaultDecision = { delayMs: 0, error: undefined, staleDocuments: 0 };
    for (const { rule, next } of this.rules) {
      if (rule.kind !== "any" && rule.kind !== kind) continue;
      if (rule.partition !== undefined && rule.partition !== partition) continue;
      if (rule.count !== undefined && rule.fired >= rule.count) continue;
      if (rule.mode !== "delay" && decision.error) continue;
      if (rule.fraction !== undefined && next() >= rule.fraction) continue;
      rule.fired++;
      if (rule.mode === "delay") decision.delayMs += rule.delayMs;
      else if (rule.mode === "stale") decision.staleDocuments = Math.max(decision.staleDocuments, rule.documents);
      else decision.error = rule;
    }
    return decision;
  }
}
