// zod schemas of the public API: they validate requests and generate the OpenAPI document.
import { z } from "@hono/zod-openapi";
import { steps } from "../payment/events.ts";
import { decodeCursor } from "../readModel/payments.ts";
import type { PaymentResource, RefundResource } from "../payment/resource.ts";
import type { Status } from "../payment/state.ts";
import { codesOf } from "./problems.ts";

/**
 * No control characters: Unicode's Cc, C0 and DEL and C1 alike (U+0085 breaks lines, U+009B starts terminal escapes).
 * Written without the `u` flag: the OpenAPI document carries it as the schema's `pattern`, which has no flags.
 */
const noControlCharacters = /^[^\u0000-\u001f\u007f-\u009f]*$/;
/** No unpaired surrogate ("\ud800" in JSON): such text is not Unicode, and strict JSON readers refuse it in our answers. */
const wellFormed = /^\P{Cs}*$/u;
/** Free text a client gives us (metadata values, a cancel's reason): no control characters, and Unicode. */
const plainText = (what: string, sized: z.ZodString) =>
  sized
    .regex(noControlCharacters, { error: `${what} cannot contain control characters` })
    .regex(wellFormed, { error: `${what} must be valid Unicode (no unpaired surrogates)` });
const statuses = ["initiated", "created", "settled", "completed", "failed", "cancelled"] as const satisfies readonly Status[];

/** A missing field and one of the wrong type are told apart. */
const requiredAs = (field: string, type: string) => ({ error: (issue: { input?: unknown }) => (issue.input === undefined ? `${field} is required` : `${field} must be ${type}`) });

export const amountSchema = z
  .number(requiredAs("amount", "a number"))
  .positive({ error: "amount must be greater than 0" })
  .openapi({ description: "Major units as a decimal number, at most the currency's minor-unit decimals (86.10 GBP, 100 JPY)", example: 86.1 });

// Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
export const metadataSchema = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.:-]{1,40}$/, { error: "metadata keys are 1-40 characters of A-Z a-z 0-9 _ . : -" }),
    plainText("metadata values", z.string().max(500, { error: "metadata values are at most 500 characters" })),
  )
  .refine((m) => Object.keys(m).length <= 50, { error: "at most 50 metadata keys" })
  .openapi({ example: { orderId: "A-1042" } });

export const createPaymentBody = z
  .strictObject({
    amount: amountSchema,
    currency: z.string(requiredAs("currency", "a string")).openapi({ description: "ISO 4217 code, one of the configured currencies", example: "GBP" }),
    metadata: metadataSchema.optional(),
  })
  .openapi("CreatePayment");

export const legacyCreateBody = createPaymentBody.omit({ metadata: true }).openapi("RegisPayCreatePayment");

export const cancelBody = z
  .strictObject({
    reason: plainText("reason", z.string().max(500)).optional(),
  })
  .openapi("CancelPayment");

export const refundBody = z
  .strictObject({ amount: amountSchema.optional().openapi({ description: "Without it, all that is left to refund" }) })
  .openapi("CreateRefund");

// UUIDs are case-insensitive (RFC 9562); payment ids are stored, and objects named, in lower case.
export const paymentIdParam = z.object({ id: z.uuid().toLowerCase().openapi({ param: { name: "id", in: "path" }, example: "7551548a-b366-4081-9330-ae19bfc5557f" }) });

const isoTime = "must be an ISO 8601 time with its offset (2026-01-31T12:00:00Z)";

/** A whole number in a query string, in decimal digits only: "0x2", " 1" or "1e2" are refused, not coerced. */
const queryInt = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]{1,15}$/, { error: "must be a whole number in decimal digits" })
    .transform(Number)
    .pipe(z.number().min(min, { error: `must be at least ${min}` }).max(max, { error: `must be at most ${max}` }))
    .openapi({ type: "integer", minimum: min, maximum: max });

export const paymentQuery = z
  .strictObject({
    atVersion: queryInt(1, Number.MAX_SAFE_INTEGER).optional().openapi({ description: "The state as it was after this version (not with asOf)" }),
    asOf: z.iso.datetime({ offset: true, error: isoTime }).optional().openapi({ description: "The state as it was at this time, ISO 8601 (not with atVersion)" }),
  })
  .refine((q) => q.atVersion === undefined || q.asOf === undefined, { error: "give atVersion or asOf, not both", path: ["asOf"] });

export const historyQuery = z.strictObject({
  fromVersion: queryInt(1, Number.MAX_SAFE_INTEGER).default(1),
  limit: queryInt(1, 1000).default(100),
});

export const idempotencyKeyHeader = z.object({
  "idempotency-key": z
    .string()
    .min(1, { error: "Idempotency-Key cannot be empty" })
    .max(255, { error: "Idempotency-Key is at most 255 characters" })
    .regex(/^[\x21-\x7e]*$/, { error: "Idempotency-Key is printable ASCII without spaces" })
    .optional()
    .openapi({ param: { name: "idempotency-key", in: "header" }, description: "A retry with the same key and body replays the first answer" }),
});

const stall = z.object({ step: z.enum(steps), reason: z.string(), attempts: z.number(), at: z.string() }).nullable();

export const refundSchema = z
  .object({
    object: z.literal("refund"),
    id: z.string(),
    paymentId: z.string(),
    amount: z.number(),
    currency: z.string(),
    status: z.enum(["pending", "succeeded", "failed"]),
    providerRefundId: z.string().nullable(),
    failureReason: z.string().nullable(),
    stalled: stall,
    requestedAt: z.string(),
    completedAt: z.string().nullable(),
  })
  .openapi("Refund") satisfies z.ZodType<RefundResource>;

export const paymentSchema = z
  .object({
    object: z.literal("payment"),
    id: z.string(),
    status: z.enum(statuses),
    amount: z.number(),
    currency: z.string(),
    paymentReference: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
    stalled: stall,
    failure: z.object({ step: z.enum(steps), reason: z.string() }).nullable(),
    cancellation: z.object({ reason: z.string().nullable() }).nullable(),
    refundedAmount: z.number(),
    refunds: z.array(refundSchema),
    version: z.number(),
    initiatedAt: z.string(),
    createdAt: z.string().nullable(),
    settledAt: z.string().nullable(),
    completedAt: z.string().nullable(),
    failedAt: z.string().nullable(),
    cancelledAt: z.string().nullable(),
  })
  .openapi("Payment") satisfies z.ZodType<PaymentResource>;

export const eventDocumentSchema = z
  .object({
    id: z.string(),
    stream: z.object({ id: z.string(), version: z.number() }),
    eventType: z.string(),
    eventData: z.record(z.string(), z.unknown()),
    eventId: z.string().optional(),
    metadata: z.object({ correlationId: z.string().nullable(), causationId: z.string().nullable() }).optional(),
  })
  .openapi("StoredEvent");

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    code: z.string(),
    detail: z.string().optional(),
    errors: z.record(z.string(), z.array(z.string())).optional(),
    requestId: z.string().optional(),
  })
  .openapi("Problem");

const retryAfter = { "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const } } };

/**
 * A route's problem+json answers for the OpenAPI document, by status: the codes each carries (see problems.ts) and
 * Retry-After where it is sent (a 429, and a 503 the client may retry). Any route may answer 500 `internal_error`.
 */
export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(
    [...new Set([...statuses, 500])]
      .sort((a, b) => a - b)
      .map((status) => [
        status,
        { description: codesOf(status).join(", "), content: { "application/problem+json": { schema: problemSchema } }, ...(status === 429 || status === 503 ? { headers: retryAfter } : {}) },
      ]),
  );

export const listQuery = z.strictObject({
  status: z.enum(statuses, { error: `must be one of ${statuses.join(", ")}` }).optional(),
  currency: z.string().regex(/^[A-Z]{3}$/, { error: "currency is an ISO 4217 code" }).optional(),
  createdFrom: z.iso.datetime({ offset: true, error: isoTime }).optional().openapi({ description: "Initiated at or after (ISO 8601)" }),
  createdTo: z.iso.datetime({ offset: true, error: isoTime }).optional().openapi({ description: "Initiated before (ISO 8601)" }),
  limit: queryInt(1, 100).default(20),
  cursor: z.string().max(256).refine((c) => decodeCursor(c) !== null, { error: "not a cursor from this API" }).optional(),
});

export const paymentSummarySchema = z
  .object({
    object: z.literal("payment_summary"),
    id: z.string(),
    status: z.enum(statuses),
    amount: z.number(),
    currency: z.string(),
    initiatedAt: z.string(),
    updatedAt: z.string(),
    version: z.number(),
    stalled: z.boolean(),
    refundedAmount: z.number(),
  })
  .openapi("PaymentSummary");
