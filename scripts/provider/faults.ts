// Fault injection for recorded routes, decided before the operation runs so a fault never binds an idempotency key.
import type { RecordedRoute } from "./settings.ts";
import type { Result, State } from "./state.ts";

export type Fault = { kind: "timeout" } | { kind: "error"; result: Result };

const failure = (status: number, why: string): Fault => ({
  kind: "error",
  result: {
    status,
    body: { code: status === 503 ? "service_unavailable" : "simulated_error", message: `simulated failure: ${why}` },
    outcome: "error",
  },
});

// Order: the toggle-errors switch, then failNext, then the seeded draws. The generator is drawn only while a rate
// is set, so the same seed and settings replay the same sequence of faults.
export function pickFault(state: State, route: RecordedRoute): Fault | null {
  const { settings } = state;
  if (settings.errors) return failure(500, "errors toggled on");
  const next = settings.failNext;
  if (next && (next.route === undefined || next.route === route)) {
    settings.failNext = next.count > 1 ? { ...next, count: next.count - 1 } : null;
    return next.status === "timeout" ? { kind: "timeout" } : failure(next.status, "failNext");
  }
  if (settings.timeoutRate === 0 && settings.errorRate === 0) return null;
  const draw = state.random();
  if (draw < settings.timeoutRate) return { kind: "timeout" };
  if (draw < settings.timeoutRate + settings.errorRate) {
    return failure(settings.errorStatus ?? (state.random() < 0.5 ? 500 : 503), "errorRate");
  }
  return null;
}
