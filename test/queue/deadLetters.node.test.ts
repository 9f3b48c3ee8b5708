// The dead-letter queue's consumer must keep retrying a stall for as long as an append of unknown outcome could still
// land (it answers "retry" meanwhile): with fewer retries the message is dropped, and the stall is never recorded.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { backoffSeconds } from "../../src/queue/message.ts";

const toml = readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8");
/** Each environment's dead-letter consumer block: its max_retries (undefined when left to the platform's default). */
const deadLetterConsumers = [...toml.matchAll(/\[\[(?:env\.(\w+)\.)?queues\.consumers\]\]\nqueue = "payment-events-dlq"\n([^[]*)/g)].map(([, env, body]) => ({
  env: env ?? "top level",
  maxRetries: /max_retries = (\d+)/.exec(body!)?.[1],
}));

describe("the dead-letter queue's consumer", () => {
  it("retries, at its shortest backoff, for longer than an unknown append can take to land, in every environment", () => {
    // Every environment takes the timers' defaults (none sets them in wrangler.toml), which are checked here.
    expect(toml).not.toMatch(/^(RELAY_SETTLE_MS|RETRY_BASE_SECONDS|RETRY_MAX_SECONDS)\s*=/m);
    const config = loadConfig({ ENVIRONMENT: "development", COSMOS_ENDPOINT: "http://127.0.0.1:8081", COSMOS_KEY: "k", PROVIDER_URL: "http://127.0.0.1:8082", WEBHOOK_SECRET: "0123456789abcdef0123" });
    expect(deadLetterConsumers.map((c) => c.env)).toEqual(["top level", "load", "production"]);
    for (const { env, maxRetries } of deadLetterConsumers) {
      expect(maxRetries, env).toBeDefined();
      const shortest = Array.from({ length: Number(maxRetries) }, (_, i) => backoffSeconds(config, i + 1, () => 0)).reduce((a, b) => a + b, 0);
      expect(shortest * 1000, env).toBeGreaterThan(config.RELAY_SETTLE_MS);
    }
  });
});
