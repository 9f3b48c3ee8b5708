// given(events).when(command).then(events | rejection | nothing), and every accepted command tried twice.
import { expect } from "vitest";
import { decide, type Command, type RejectionCode } from "../../src/payment/decide.ts";
import type { PaymentEvent, Recorded } from "../../src/payment/events.ts";
import { evolve, fold, type State } from "../../src/payment/state.ts";

export const recorded = (events: PaymentEvent[], from = 1): Recorded[] =>
  events.map((e, i) => ({ ...e, eventId: `event-${from + i}`, version: from + i }));

export function given(...events: PaymentEvent[]) {
  const history = recorded(events);
  const state = fold(history);
  return {
    state,
    when(command: Command) {
      const decision = decide(command, state);
      const stateAfter = (): State => {
        if (!decision.ok) throw new Error(`rejected: ${decision.rejection.code}`);
        return recorded(decision.events, history.length + 1).reduce(evolve, state);
      };
      return {
        /** The command gives exactly these events, and repeating it afterwards gives none. */
        then(expected: PaymentEvent[]) {
          expect(decision).toEqual({ ok: true, events: expected });
          expect(decide(command, stateAfter())).toEqual({ ok: true, events: [] });
          return stateAfter();
        },
        thenNothing() {
          expect(decision).toEqual({ ok: true, events: [] });
        },
        thenRejected(code: RejectionCode) {
          expect(decision.ok ? "accepted" : decision.rejection.code).toBe(code);
        },
      };
    },
  };
}
