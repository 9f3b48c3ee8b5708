// Test projects: "workers" runs on the real Workers runtime against the local Cosmos emulator and provider
// simulator (started by test/setup/services.ts); "node" runs the local tools' own suites.
import { createHash } from "node:crypto";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { emulatorKey, keys, testContainer, testDatabase, ticketSecret, webhookSecret } from "./test/setup/constants.ts";

const digest = (key: string) => createHash("sha256").update(key).digest("hex");

export default defineConfig({
  test: {
    // Runs once, outside the Workers runtime; what it provides reaches every project.
    globalSetup: ["test/setup/services.ts"],
    projects: [
      {
        extends: false,
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // Requests from tests are many and quick: the per-merchant limit is raised as for load runs.
              // SPENT_RATE_LIMIT: the same binding with a limit of one, which tests spend to see the refusal (test/http/live.test.ts).
              ratelimits: {
                MERCHANT_RATE_LIMIT: { namespace_id: "1001", simple: { limit: 1_000_000, period: 60 } },
                SPENT_RATE_LIMIT: { namespace_id: "1002", simple: { limit: 1, period: 60 } },
              },
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                ENVIRONMENT: "test",
                LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
                COSMOS_ENDPOINT: inject("cosmosEndpoint"),
                COSMOS_KEY: emulatorKey,
                COSMOS_DATABASE: testDatabase,
                COSMOS_CONTAINER: testContainer,
                COSMOS_REQUEST_TIMEOUT_MS: "5000",
                COSMOS_THROTTLE_MAX_WAIT_S: "5",
                PROVIDER_URL: inject("providerUrl"),
                PROVIDER_TIMEOUT_MS: "2000",
                WEBHOOK_SECRET: webhookSecret,
                LIVE_TICKET_SECRET: ticketSecret,
                MERCHANT_KEYS: JSON.stringify({ "merchant-a": [digest(keys.merchantA), digest(keys.merchantARotated)], "merchant-b": [digest(keys.merchantB)] }),
                ADMIN_KEYS: digest(keys.admin),
                LEGACY_MERCHANT_ID: "merchant-a",
                CURRENCIES: "GBP,EUR,USD,JPY,KWD",
                RETRY_BASE_SECONDS: "0",
                RELAY_CHECK_MS: "200",
                RELAY_SETTLE_MS: "1000",
                WATCHDOG_MS: "60000",
              },
              queueConsumers: {
                "payment-events": { maxBatchTimeout: 0, maxRetries: 2, deadLetterQueue: "payment-events-dlq" },
                "payment-events-dlq": { maxBatchTimeout: 0 },
              },
            },
          })),
        ],
        test: {
          name: "workers",
          setupFiles: ["test/setup/migrations.ts"],
          testTimeout: 30_000,
          include: ["test/**/*.test.ts"],
          exclude: ["test/**/*.node.test.ts", "test/e2e/**"],
          // One provider simulator serves every file: files that change its settings must not overlap.
          fileParallelism: false,
          // The projects run one group after another: on two cores, stacks running side by side starve each other.
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: false,
        test: {
          name: "node",
          include: ["test/**/*.node.test.ts"],
          exclude: ["test/e2e/**", "test/reliability/**"],
          environment: "node",
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: false,
        // Runs alone, last: it drives its own stack hard, with faults, and restarts the Worker runtime.
        test: { name: "reliability", include: ["test/reliability/**/*.node.test.ts"], environment: "node", sequence: { groupOrder: 3 } },
      },
      {
        extends: false,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          // Its own stack (emulator, simulator, wrangler dev), started once for all e2e files and stopped at the end.
          globalSetup: ["test/e2e/setup.ts"],
          testTimeout: 60_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
