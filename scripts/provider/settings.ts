// Fault-injection settings of the simulator: defaults, and validation of a patch merged by POST /_sim/settings.
import { isObject, type JsonObject } from "./json.ts";
import { isCurrency } from "./money.ts";

export const recordedRoutes = ["create", "settle", "cancel", "refund", "notify"] as const;
export type RecordedRoute = (typeof recordedRoutes)[number];

export const declinableRoutes = ["create", "settle", "refund"] as const;
export type DeclinableRoute = (typeof declinableRoutes)[number];

export type DeclineRule = {
  route?: DeclinableRoute;
  amountEquals?: number;
  amountGte?: number;
  currency?: string;
  code?: string;
  reason?: string;
};

// status "timeout": the calls are held unanswered, as the timeoutRate draw holds them
export type FailNext = { route?: RecordedRoute; count: number; status: number | "timeout" };

export type Settings = {
  latencyMs: number;
  errorRate: number;
  // null: each injected error is 500 or 503, drawn from the seeded generator
  errorStatus: number | null;
  timeoutRate: number;
  // the remaining count is decremented as failures are served; null once spent
  failNext: FailNext | null;
  declines: DeclineRule[];
  seed: number;
  // Regis Pay's POST /toggle-errors switch: every recorded route answers 500
  errors: boolean;
  // calls to these routes wait, unanswered, until a settings change takes their route out (a test's gate)
  hold: RecordedRoute[];
};

export function defaultSettings(): Settings {
  return {
    latencyMs: 0,
    errorRate: 0,
    errorStatus: null,
    timeoutRate: 0,
    failNext: null,
    declines: [],
    seed: 1,
    errors: false,
    hold: [],
  };
}

type Patch = JsonObject;
const isRate = (value: unknown) => typeof value === "number" && value >= 0 && value <= 1;
const isStatus = (value: unknown) => Number.isInteger(value) && (value as number) >= 400 && (value as number) <= 599;
const isAmount = (value: unknown) => typeof value === "number" && Number.isFinite(value) && value >= 0;
const isText = (value: unknown) => typeof value === "string" && value.length > 0;

function problems(patch: Patch): string[] {
  const found: string[] = [];
  const check = (ok: boolean, message: string) => ok || found.push(message);
  for (const [name, value] of Object.entries(patch)) {
    switch (name) {
      case "latencyMs":
        check(Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 60_000, "latencyMs: integer 0..60000");
        break;
      case "errorRate":
      case "timeoutRate":
        check(isRate(value), `${name}: number 0..1`);
        break;
      case "errorStatus":
        check(value === null || isStatus(value), "errorStatus: 400..599 or null");
        break;
      case "seed":
        check(Number.isInteger(value), "seed: integer");
        break;
      case "errors":
        check(typeof value === "boolean", "errors: boolean");
        break;
      case "hold":
        check(Array.isArray(value) && value.every((route) => recordedRoutes.includes(route as RecordedRoute)), `hold: array of ${recordedRoutes.join("|")}`);
        break;
      case "failNext":
        check(
          value === null ||
            (isObject(value) &&
              Object.keys(value).every((key) => ["route", "count", "status"].includes(key)) &&
              (value.route === undefined || recordedRoutes.includes(value.route as RecordedRoute)) &&
              Number.isInteger(value.count) &&
              (value.count as number) >= 0 &&
              (value.status === undefined || value.status === "timeout" || isStatus(value.status))),
          `failNext: null or { route?: ${recordedRoutes.join("|")}, count: integer >= 0, status?: 400..599 | "timeout" }`,
        );
        break;
      case "declines":
        check(
          Array.isArray(value) &&
            value.every(
              (rule) =>
                isObject(rule) &&
                Object.keys(rule).every((key) =>
                  ["route", "amountEquals", "amountGte", "currency", "code", "reason"].includes(key),
                ) &&
                (rule.route === undefined || declinableRoutes.includes(rule.route as DeclinableRoute)) &&
                (rule.amountEquals === undefined || isAmount(rule.amountEquals)) &&
                (rule.amountGte === undefined || isAmount(rule.amountGte)) &&
                (rule.currency === undefined || isCurrency(rule.currency)) &&
                (rule.code === undefined || isText(rule.code)) &&
                (rule.reason === undefined || isText(rule.reason)),
            ),
          `declines: array of { route?: ${declinableRoutes.join("|")}, amountEquals?, amountGte?, currency?, code?, reason? }`,
        );
        break;
      default:
        found.push(`unknown setting "${name}"`);
    }
  }
  return found;
}

// The merged settings, or the list of what is wrong with the patch (nothing is applied then).
export function mergeSettings(current: Settings, patch: unknown): { settings: Settings } | { problems: string[] } {
  if (!isObject(patch)) return { problems: ["body: a JSON object"] };
  const found = problems(patch);
  if (found.length > 0) return { problems: found };
  const merged = { ...current, ...patch } as Settings;
  if (isObject(patch.failNext)) {
    const { route, count, status } = patch.failNext as Partial<FailNext>;
    merged.failNext = count === 0 ? null : { ...(route ? { route } : {}), count: count as number, status: status ?? 500 };
  }
  return { settings: merged };
}
