// Configuration: the zod schema of the Worker's vars and secrets; fails fast naming what is missing or wrong.
import { z } from "zod";
import { log } from "./core/log.ts";

/** A number given as a var (a string): an empty value is refused, not read as 0 (`Number("")` is 0). */
const num = (schema: z.ZodNumber, fallback: number) =>
  z.union([z.number(), z.string().trim().min(1, "must not be empty")]).transform(Number).pipe(schema).default(fallback);
/** Milliseconds, at least `min`: 0 would make a recovery timer fire on every check (a storm) or a timeout expire at once. */
const ms = (fallback: number, min = 1) => num(z.number().int().min(min), fallback);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "a lowercase hex SHA-256 digest");

export const configSchema = z.object({
  ENVIRONMENT: z.enum(["development", "test", "production"]).default("production"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** "memory" keeps events in the isolate (the benchmark's ceiling run), never for real payments. */
  EVENT_STORE: z.enum(["cosmos", "memory"]).default("cosmos"),
  COSMOS_ENDPOINT: z.url(),
  COSMOS_KEY: z.string().min(1),
  COSMOS_DATABASE: z.string().min(1).default("regis-pay"),
  COSMOS_CONTAINER: z.string().min(1).default("events"),
  COSMOS_REQUEST_TIMEOUT_MS: ms(10_000),
  COSMOS_THROTTLE_RETRIES: num(z.number().int().min(0), 9),
  COSMOS_THROTTLE_MAX_WAIT_S: num(z.number().int().min(0), 30),
  /** The payment provider; "instant:" answers in-process at once (the benchmark's ceiling run only). */
  PROVIDER_URL: z.union([z.url(), z.literal("instant:")]),
  /** Where merchant notifications are sent (Regis Pay's notifications service); defaults to the provider's host. */
  NOTIFICATION_URL: z.union([z.url(), z.literal("instant:")]).optional(),
  PROVIDER_TIMEOUT_MS: ms(10_000),
  /** Signs merchant notifications (timestamp + HMAC-SHA256, like Stripe's webhooks). */
  WEBHOOK_SECRET: z.string().min(16),
  /**
   * Signs the live WebSocket's tickets. The Worker's alone: the webhook secret is shared with whoever checks
   * notifications, who must not be able to mint tickets for any merchant's payment. Without it the live routes answer
   * 503 and everything else works (a deployment upgraded before the secret is put keeps taking payments).
   */
  LIVE_TICKET_SECRET: z.string().min(32).optional(),
  /** JSON {"<merchantId>": ["<sha256 hex of an API key>", ...]}: several keys per merchant, for rotation. */
  MERCHANT_KEYS: z
    .string()
    .default("{}")
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "MERCHANT_KEYS is not JSON" });
        return z.NEVER;
      }
    })
    .pipe(z.record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), z.array(sha256Hex).min(1))),
  /** Comma-separated SHA-256 hex digests of the operator keys for /admin routes. */
  ADMIN_KEYS: z
    .string()
    .default("")
    .transform((s) => s.split(",").map((k) => k.trim()).filter(Boolean))
    .pipe(z.array(sha256Hex)),
  /** Owner of payments written without a MerchantId (Regis Pay's own documents). */
  LEGACY_MERCHANT_ID: z.string().min(1).default("legacy"),
  CURRENCIES: z
    .string()
    .default("GBP,EUR,USD")
    .transform((s) => s.split(",").map((c) => c.trim()).filter(Boolean)),
  /** Largest amount accepted, in major units. */
  MAX_AMOUNT: num(z.number().positive(), 1_000_000),
  /** Queue retry backoff: base * 2^(attempt-1) seconds with jitter, capped. */
  RETRY_BASE_SECONDS: num(z.number().min(0), 2),
  /** A queue's delay is at most 12 h (43,200 s): longer, a retry would be refused, and the message retried at once. */
  RETRY_MAX_SECONDS: num(z.number().min(0).max(43_200, "at most 43200: a queue's longest delay"), 300),
  /** How often a payment with an append of unknown outcome re-checks Cosmos, and for how long; a failed check is retried after RELAY_CHECK_MS, doubled per failed round. */
  RELAY_CHECK_MS: ms(5_000),
  RELAY_SETTLE_MS: num(z.number().int().min(1).max(43_200_000, "at most 43200000: a step held back for it waits in the queue, 12 h at most"), 60_000),
  /** A relayed event whose delivery to the consumer is not confirmed after this long is sent again (messages can be lost). */
  REDELIVER_AFTER_MS: ms(60_000),
  /** A payment that has not progressed for this long is re-driven. */
  WATCHDOG_MS: ms(120_000),
  /**
   * While a payment's lifecycle is in flight, its object keeps a timer pending for this long after its last command or
   * delivery, which keeps it in memory (and billed) instead of hibernating after 10 s idle. 0 turns it off. The trade
   * is in the README ("One writer per payment").
   */
  WARM_HOLD_MS: ms(60_000, 0),
  /**
   * The relay's bookkeeping (relayed events kept, relayed_version, deliveries confirmed, counters, stored replies) is
   * written with the object's next use of its storage, once nothing is due, or after this long: a payment's steps
   * share one commit.
   */
  WRITE_BEHIND_MS: ms(1_000),
  /**
   * Redelivery and the watchdog also wait at least twice the queue's lag last observed by its consumer, while that
   * observation is younger than this (a backlog is not loss: re-sending into it only deepens it).
   */
  QUEUE_LAG_TTL_MS: ms(60_000, 0),
  /** How long a live WebSocket ticket is valid. */
  LIVE_TICKET_TTL_SECONDS: num(z.number().int().positive(), 60),
  /** A live socket's longest life: then it is closed (4001) and its client reconnects with a fresh ticket, so a revoked key stops hearing events. */
  LIVE_SOCKET_MAX_SECONDS: num(z.number().int().positive(), 3600),
  /**
   * A live socket may send only "ping", at most once in this long; anything else closes it (1008). Each message wakes
   * the payment's object, where its commands wait behind it, and spends no rate limit.
   */
  LIVE_PING_MIN_MS: num(z.number().int().min(1).max(20_000, "at most 20000: the dashboard pings every 25 s"), 5_000),
  /** How long GET /health reuses its answer (0: asks Cosmos every time). It needs no key: this bounds what probes cost Cosmos. */
  HEALTH_CACHE_MS: ms(1_000, 0),
  /** Retry-After for a rate-limited merchant: the rate-limit binding's period. */
  RATE_LIMIT_PERIOD_SECONDS: num(z.number().int().positive(), 60),
  /** Re-decisions after an append conflict before answering 409. */
  CONFLICT_RETRIES: num(z.number().int().min(0), 3),
  /**
   * Fault injection for the reliability suite and soak runs (refused in production): the share of crash points at
   * which a payment's object aborts, the share of queue deliveries sent again (delayed by up to the given seconds,
   * so duplicated and reordered), and the seed that makes these choices repeatable.
   */
  FAULT_ABORT_RATE: num(z.number().min(0).max(1), 0),
  FAULT_REDELIVER_RATE: num(z.number().min(0).max(1), 0),
  FAULT_REDELIVER_MAX_DELAY_S: num(z.number().int().min(0), 2),
  FAULT_SEED: z.string().default("0"),
});

export type Config = z.infer<typeof configSchema>;

/** Parses the Worker's vars and secrets. Throws naming every missing or invalid setting. */
export function loadConfig(env: object): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  const config = parsed.data;
  // A key is one caller's: the same digest for two merchants, or for a merchant and an operator, would let one act as
  // the other.
  const owners = new Map<string, string>();
  for (const [merchant, digests] of Object.entries(config.MERCHANT_KEYS))
    for (const digest of digests) {
      if ((owners.get(digest) ?? merchant) !== merchant) throw new Error(`invalid configuration: MERCHANT_KEYS: a key is given to both ${owners.get(digest)} and ${merchant}`);
      owners.set(digest, merchant);
    }
  if (config.ADMIN_KEYS.some((digest) => owners.has(digest))) throw new Error("invalid configuration: ADMIN_KEYS: a key is also a merchant's");
  // The notification receiver holds the webhook secret: with the same secret it could mint live tickets. Only live
  // updates go (503), as without the secret; the rest of the service stays up.
  if (config.LIVE_TICKET_SECRET !== undefined && config.LIVE_TICKET_SECRET === config.WEBHOOK_SECRET) {
    log("error", "LIVE_TICKET_SECRET equals WEBHOOK_SECRET: live updates are off until it differs");
    config.LIVE_TICKET_SECRET = undefined;
  }
  if (config.ENVIRONMENT === "production") {
    if (Object.keys(config.MERCHANT_KEYS).length === 0)
      throw new Error("invalid configuration: MERCHANT_KEYS: no merchant key configured (the API fails closed)");
    if (config.EVENT_STORE === "memory" || config.PROVIDER_URL === "instant:" || config.NOTIFICATION_URL === "instant:")
      throw new Error("invalid configuration: EVENT_STORE=memory and an instant: PROVIDER_URL or NOTIFICATION_URL are for benchmarks, never production");
    if (config.FAULT_ABORT_RATE > 0 || config.FAULT_REDELIVER_RATE > 0)
      throw new Error("invalid configuration: fault injection (FAULT_*) is for tests, never production");
  }
  return config;
}
