// The relay's message: one committed event, validated with zod where it enters the consumer.
import { z } from "zod";
import { eventIdOf, type EventDocument } from "../core/eventStore.ts";

export const eventMessageSchema = z.object({
  eventId: z.string().min(1),
  streamId: z.string().regex(/^pay:[0-9a-f-]{36}$/i),
  version: z.number().int().positive(),
  type: z.string().min(1),
  data: z.record(z.string(), z.unknown()),
  correlationId: z.string().nullable(),
  causationId: z.string().nullable(),
});

export type EventMessage = z.infer<typeof eventMessageSchema>;

/** The message of a committed event document. */
export function eventMessage(doc: EventDocument): EventMessage {
  return {
    eventId: eventIdOf(doc),
    streamId: doc.stream.id,
    version: doc.stream.version,
    type: doc.eventType,
    data: doc.eventData,
    correlationId: doc.metadata?.correlationId ?? null,
    causationId: doc.metadata?.causationId ?? null,
  };
}
