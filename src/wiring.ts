// The one place that reads env and builds the event store and provider settings.
import { configSchema, loadConfig, type Config } from "./config.ts";
import type { EventStore } from "./core/eventStore.ts";
import { setLogLevel } from "./core/log.ts";
import { MemoryEventStore } from "./core/memoryEventStore.ts";
import { CosmosEventStore } from "./cosmos/cosmosEventStore.ts";
import type { ProviderSettings } from "./provider/client.ts";

export type Services = { config: Config; store: EventStore; provider: ProviderSettings };

let cached: { key: string; services: Services } | undefined;
// One in-memory store per isolate, shared by every object in it (the benchmark's ceiling run).
const memoryStore = new MemoryEventStore();

const settingNames = Object.keys(configSchema.shape);

/**
 * Built once per isolate: workerd hands each request and object its own `env` object, but the settings in it
 * are the deployment's, so they are the cache key (a client per request would redo its set-up every time). Only
 * the settings are read: reading every binding of `env` on each call showed in profiles.
 */
export function services(env: object): Services {
  const settings = env as Record<string, unknown>;
  const key = settingNames.map((name) => String(settings[name])).join("\u0000");
  if (cached?.key === key) return cached.services;
  const config = loadConfig(env);
  setLogLevel(config.LOG_LEVEL);
  const store =
    config.EVENT_STORE === "memory"
      ? memoryStore
      : CosmosEventStore.connect({
          endpoint: config.COSMOS_ENDPOINT,
          key: config.COSMOS_KEY,
          database: config.COSMOS_DATABASE,
          container: config.COSMOS_CONTAINER,
          requestTimeoutMs: config.COSMOS_REQUEST_TIMEOUT_MS,
          throttleRetries: config.COSMOS_THROTTLE_RETRIES,
          throttleMaxWaitSeconds: config.COSMOS_THROTTLE_MAX_WAIT_S,
        });
  const provider: ProviderSettings = {
    providerUrl: config.PROVIDER_URL,
    notificationUrl: config.NOTIFICATION_URL ?? config.PROVIDER_URL,
    timeoutMs: config.PROVIDER_TIMEOUT_MS,
    webhookSecret: config.WEBHOOK_SECRET,
  };
  cached = { key, services: { config, store, provider } };
  return cached.services;
}
