// The queue consumers: each committed event updates the payments list and runs the step it triggers in its
// payment's object; exhausted messages (the dead-letter queue) mark that step stalled.
import { faultFires } from "../core/faults.ts";
import { log } from "../core/log.ts";
import type { Config } from "../config.ts";
import { project } from "../readModel/payments.ts";
import { eventMessageSchema, type EventMessage } from "./message.ts";

/** Exponential backoff with full jitter, in whole seconds (the queue's unit), capped. */
export function backoffSeconds(config: Config, attempts: number, random = Math.random) {
  const ceiling = Math.min(config.RETRY_MAX_SECONDS, config.RETRY_BASE_SECONDS * 2 ** Math.max(0, attempts - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export async function consume(batch: MessageBatch<unknown>, env: Env, config: Config, deadLetters: boolean) {
  await Promise.all(
    batch.messages.map(async (message) => {
      const parsed = eventMessageSchema.safeParse(message.body);
      if (!parsed.success) {
        log("error", "malformed message dropped", { queue: batch.queue, messageId: message.id });
        return message.ack();
      }
      const event: EventMessage = parsed.data;
      const fields = { queue: batch.queue, eventId: event.eventId, streamId: event.streamId, version: event.version, type: event.type, correlationId: event.correlationId, attempts: message.attempts };
      try {
        // The list is secondary: a failed update is logged and repaired by the next event or a rebuild, and never
        // holds the payment's own lifecycle back.
        if (event.summary)
          await project(env.READ_MODEL, event.summary).catch((e: unknown) => log("error", "payments list not updated", { ...fields, error: String(e) }));
        const stub = env.PAYMENTS.getByName(event.streamId.slice("pay:".length));
        const result = deadLetters ? await stub.onExhausted(event) : await stub.onEvent(event);
        if (result.outcome === "retry") {
          const delaySeconds = backoffSeconds(config, message.attempts);
          log("warn", "step will retry", { ...fields, reason: result.reason, delaySeconds });
          return message.retry({ delaySeconds });
        }
        log("info", `message ${result.outcome}`, fields);
        message.ack();
        // Fault injection (tests only): the same message again, later, so duplicated and out of order.
        if (!deadLetters && faultFires(config.FAULT_SEED, config.FAULT_REDELIVER_RATE, "redeliver", event.eventId, message.attempts))
          await env.EVENTS.send(event, { contentType: "json", delaySeconds: Math.floor(Math.random() * (config.FAULT_REDELIVER_MAX_DELAY_S + 1)) });
      } catch (e) {
        // The object was reset or unreachable: the delivery is retried (the step is idempotent).
        log("error", "message failed", { ...fields, error: String(e) });
        message.retry({ delaySeconds: backoffSeconds(config, message.attempts) });
      }
    }),
  );
}
