// What the payment object answers over RPC: typed values, never thrown domain errors (RPC keeps only name and message).
import type { RejectionCode } from "../payment/decide.ts";

export type FailureCode =
  | RejectionCode
  | "validation_failed"
  | "version_conflict"
  | "version_not_found"
  | "store_unavailable"
  | "provider_unavailable";

export type Failure = { ok: false; code: FailureCode; message: string; errors?: Record<string, string[]>; retryAfterSeconds?: number };
export type Reply<T> = { ok: true; status: number; body: T; replayed?: boolean } | Failure;

export const failure = (code: FailureCode, message: string, extra: Partial<Failure> = {}): Failure => ({ ok: false, code, message, ...extra });

/**
 * Outcome of a lifecycle step delivered by the queue: the consumer acks; retries with backoff (an attempt spent); or,
 * "later", acks and sends the message again to arrive in `afterMs` (held back on purpose: no attempt spent).
 */
export type StepOutcome = { outcome: "done" | "ignored" } | { outcome: "retry"; reason: string } | { outcome: "later"; reason: string; afterMs: number };
