// The queue consumers: each committed event updates the payments list and runs the step it triggers in its
// payment's object; exhausted messages (the dead-letter queue) mark that step stalled.
import { faultFires } from "../core/faults.ts";
import { log } from "../core/log.ts";
import type { Config } from "../config.ts";
import { projectAll } from "../readModel/payments.ts";
import { observedLagMs, recordLag } from "./health.ts";
import { backoffSeconds, dueIn, eventMessageSchema, type EventMessage } from "./message.ts";

export async function consume(batch: MessageBatch<unknown>, env: Env, config: Config, deadLetters: boolean) {
  const events = batch.messages.flatMap((message) => {
    const parsed = eventMessageSchema.safeParse(message.body);
    if (parsed.success) return [{ message, event: parsed.data }];
    log("error", "malformed message dropped", { queue: batch.queue, messageId: message.id });
    message.ack();
    return [];
  });
  // The list and the queue's observed lag first, in one round trip for the batch. A failed update never holds a
  // payment's lifecycle back: the steps still run, and then each message that carried a summary is retried instead
  // of acknowledged (its step is idempotent), so that the list catches up once D1 answers again. Dead letters are not
  // retried for it (a retry would stall again a step an operator may have re-driven meanwhile); a D1 outage longer
  // than the retries leaves rows behind until a rebuild.
  const lag = deadLetters ? null : observedLagMs(batch.messages);
  const summaries = events.flatMap(({ event }) => (event.summary ? [event.summary] : []));
  const listed = await projectAll(env.READ_MODEL, summaries, lag === null ? [] : [recordLag(env.READ_MODEL, lag)]).then(
    () => true,
    (e: unknown) => (log("error", "payments list not updated", { queue: batch.queue, error: String(e) }), false),
  );
  await Promise.all(events.map(({ message, event }) => step(message, event, env, config, deadLetters, listed || deadLetters || !event.summary)));
}

/** Sends a message again, due in `delaySeconds`. */
function sendLater(env: Env, body: EventMessage & { faultCopy?: number; held?: true }, delaySeconds: number) {
  const { body: due, ...options } = dueIn(body, delaySeconds);
  return env.EVENTS.send(due, options);
}

/** Hands one event to its payment's object, then acknowledges it or retries it with backoff. */
async function step(message: Message<unknown>, event: EventMessage, env: Env, config: Config, deadLetters: boolean, listed: boolean) {
  const fields = { queue: deadLetters ? "dead-letter" : "events", eventId: event.eventId, streamId: event.streamId, version: event.version, type: event.type, correlationId: event.correlationId, attempts: message.attempts };
  try {
    const stub = env.PAYMENTS.getByName(event.streamId.slice("pay:".length));
    const result = deadLetters ? await stub.onExhausted(event) : await stub.onEvent(event);
    if (result.outcome === "retry") {
      const delaySeconds = backoffSeconds(config, message.attempts);
      log("warn", "step will retry", { ...fields, reason: result.reason, delaySeconds });
      return message.retry({ delaySeconds });
    }
    if (result.outcome === "later") {
      // Held back on purpose. The first time, a fresh copy due then, so that waiting spends none of the attempts the
      // step may need; a copy held again spends one, so a step whose own appends keep failing still ends stalled.
      const delaySeconds = Math.ceil(result.afterMs / 1000);
      log("info", "step held back", { ...fields, reason: result.reason, delaySeconds });
      if ((message.body as { held?: unknown }).held === true) return message.retry({ delaySeconds: Math.max(delaySeconds, backoffSeconds(config, message.attempts)) });
      await sendLater(env, { ...event, held: true }, delaySeconds);
      return message.ack();
    }
    log("info", `message ${result.outcome}`, fields);
    if (!listed) return message.retry({ delaySeconds: backoffSeconds(config, message.attempts) });
    message.ack();
    // Fault injection (tests only): the same message again, later, so duplicated and out of order. A copy carries
    // its generation (a field the schema drops), so it is copied again on a coin of its own, not on its parent's.
    const generation = Number((message.body as { faultCopy?: unknown }).faultCopy) || 0;
    if (!deadLetters && faultFires(config.FAULT_SEED, config.FAULT_REDELIVER_RATE, "redeliver", event.eventId, message.attempts, generation))
      await sendLater(env, { ...event, faultCopy: generation + 1 }, Math.floor(Math.random() * (config.FAULT_REDELIVER_MAX_DELAY_S + 1)));
  } catch (e) {
    // The object was reset or unreachable: the delivery is retried (the step is idempotent).
    log("error", "message failed", { ...fields, error: String(e) });
    message.retry({ delaySeconds: backoffSeconds(config, message.attempts) });
  }
}
