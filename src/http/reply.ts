// Turns a payment object's typed reply into an HTTP answer, and zod failures into field errors.
import type { Context } from "hono";
import type { ZodError } from "zod";
import type { Reply } from "../durable/replies.ts";
import { problem } from "./problems.ts";

export function answer<T>(c: Context, reply: Reply<T>, render: (body: T) => unknown = (b) => b, status?: number) {
  if (!reply.ok) {
    const { code, message, errors, retryAfterSeconds } = reply;
    return problem(c, code, { detail: message, ...(errors ? { errors } : {}), ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) });
  }
  if (reply.replayed) c.header("idempotent-replayed", "true");
  return c.json(render(reply.body) as object, (status ?? reply.status) as 200);
}

/** zod issues keyed by the field they concern (unknown fields included), each a list of messages. */
export function fieldErrors(error: ZodError): Record<string, string[]> {
  // A Map, not an object: field names come from the client and may be "constructor" or "__proto__".
  const errors = new Map<string, string[]>();
  const add = (field: string, message: string) => errors.set(field, [...(errors.get(field) ?? []), message]);
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") for (const key of issue.keys) add(key, "unknown field");
    // A record's key that fails its schema: that schema's own message, not zod's "Invalid key in record".
    else if (issue.code === "invalid_key") for (const inner of issue.issues) add(issue.path.map(String).join(".") || "body", inner.message);
    else add(issue.path.length > 0 ? issue.path.map(String).join(".") : "body", issue.message);
  }
  return Object.fromEntries(errors);
}
