import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";

const base = {
  COSMOS_ENDPOINT: "https://account.documents.azure.com:443/",
  COSMOS_KEY: "key",
  PROVIDER_URL: "https://psp.example.com",
  WEBHOOK_SECRET: "0123456789abcdef0123",
  LIVE_TICKET_SECRET: "0123456789abcdef0123456789abcdef",
};
const digest = "a".repeat(64);

describe("configuration", () => {
  it("fails closed in production when no merchant key is configured", () => {
    expect(() => loadConfig({ ...base, ENVIRONMENT: "production" })).toThrow(/MERCHANT_KEYS: no merchant key/);
    expect(() => loadConfig(base)).toThrow(/no merchant key/);
    expect(loadConfig({ ...base, ENVIRONMENT: "development" }).MERCHANT_KEYS).toEqual({});
  });

  it("names every missing or invalid setting", () => {
    expect(() => loadConfig({})).toThrow(/COSMOS_ENDPOINT.*COSMOS_KEY.*PROVIDER_URL.*WEBHOOK_SECRET/);
    expect(() => loadConfig({ ...base, MERCHANT_KEYS: "not json" })).toThrow(/MERCHANT_KEYS is not JSON/);
    expect(() => loadConfig({ ...base, MERCHANT_KEYS: '{"m":["plain-key"]}' })).toThrow(/SHA-256/);
  });

  it("reads keys, currencies and timers", () => {
    const admin = "b".repeat(64);
    const c = loadConfig({ ...base, MERCHANT_KEYS: JSON.stringify({ acme: [digest] }), ADMIN_KEYS: `${admin}, ${admin}`, CURRENCIES: "GBP, JPY", WATCHDOG_MS: "5000" });
    expect(c).toMatchObject({ MERCHANT_KEYS: { acme: [digest] }, ADMIN_KEYS: [admin, admin], CURRENCIES: ["GBP", "JPY"], WATCHDOG_MS: 5000, ENVIRONMENT: "production" });
  });

  it("refuses a recovery timer or timeout of 0, or an empty one (which would read as 0); a warm hold of 0 turns it off", () => {
    const dev = { ...base, ENVIRONMENT: "development" };
    for (const name of ["WATCHDOG_MS", "REDELIVER_AFTER_MS", "RELAY_CHECK_MS", "RELAY_SETTLE_MS", "PROVIDER_TIMEOUT_MS", "COSMOS_REQUEST_TIMEOUT_MS", "LIVE_PING_MIN_MS"]) {
      expect(() => loadConfig({ ...dev, [name]: "0" })).toThrow(new RegExp(name));
      expect(() => loadConfig({ ...dev, [name]: "" })).toThrow(new RegExp(`${name}: must not be empty`));
    }
    expect(loadConfig({ ...dev, WARM_HOLD_MS: "0", WATCHDOG_MS: " 250 " })).toMatchObject({ WARM_HOLD_MS: 0, WATCHDOG_MS: 250 });
  });

  it("refuses an empty or non-numeric value for every other number (seconds, counts, rates), where 0 may be valid", () => {
    const dev = { ...base, ENVIRONMENT: "development" };
    const numbers = ["RETRY_BASE_SECONDS", "RETRY_MAX_SECONDS", "CONFLICT_RETRIES", "COSMOS_THROTTLE_RETRIES", "COSMOS_THROTTLE_MAX_WAIT_S", "MAX_AMOUNT", "LIVE_TICKET_TTL_SECONDS", "LIVE_SOCKET_MAX_SECONDS", "RATE_LIMIT_PERIOD_SECONDS", "FAULT_ABORT_RATE", "FAULT_REDELIVER_RATE", "FAULT_REDELIVER_MAX_DELAY_S", "HEALTH_CACHE_MS"];
    for (const name of numbers) {
      expect(() => loadConfig({ ...dev, [name]: " " })).toThrow(new RegExp(`${name}: must not be empty`));
      expect(() => loadConfig({ ...dev, [name]: "ten" })).toThrow(new RegExp(name));
    }
    expect(loadConfig({ ...dev, RETRY_BASE_SECONDS: "0", CONFLICT_RETRIES: "0", FAULT_ABORT_RATE: "0.25", HEALTH_CACHE_MS: "0" })).toMatchObject({ RETRY_BASE_SECONDS: 0, CONFLICT_RETRIES: 0, FAULT_ABORT_RATE: 0.25, HEALTH_CACHE_MS: 0 });
  });

  it("refuses a key given to two merchants, or to a merchant and an operator", () => {
    const dev = { ...base, ENVIRONMENT: "development" };
    expect(() => loadConfig({ ...dev, MERCHANT_KEYS: JSON.stringify({ acme: [digest], globex: [digest] }) })).toThrow(/given to both acme and globex/);
    expect(() => loadConfig({ ...dev, MERCHANT_KEYS: JSON.stringify({ acme: [digest] }), ADMIN_KEYS: digest })).toThrow(/ADMIN_KEYS: a key is also a merchant's/);
  });

  it("turns live updates off (only them) when their tickets' secret equals the webhook secret (the notification receiver could mint tickets)", () => {
    const dev = { ...base, ENVIRONMENT: "development" };
    expect(loadConfig({ ...dev, LIVE_TICKET_SECRET: "x".repeat(32), WEBHOOK_SECRET: "x".repeat(32) }).LIVE_TICKET_SECRET).toBeUndefined();
    expect(loadConfig({ ...dev, LIVE_TICKET_SECRET: "x".repeat(32), WEBHOOK_SECRET: "y".repeat(32) }).LIVE_TICKET_SECRET).toBe("x".repeat(32));
  });

  it("keeps LIVE_PING_MIN_MS below the dashboard's heartbeat (25 s)", () => {
    const dev = { ...base, ENVIRONMENT: "development" };
    expect(() => loadConfig({ ...dev, LIVE_PING_MIN_MS: "30000" })).toThrow(/LIVE_PING_MIN_MS: at most 20000/);
    expect(loadConfig({ ...dev, LIVE_PING_MIN_MS: "20000" }).LIVE_PING_MIN_MS).toBe(20_000);
  });

  it("keeps the queue's delays within its 12 hours: RETRY_MAX_SECONDS and RELAY_SETTLE_MS", () => {
    const dev = { ...base, ENVIRONMENT: "development" };
    expect(() => loadConfig({ ...dev, RETRY_MAX_SECONDS: "50000" })).toThrow(/RETRY_MAX_SECONDS: at most 43200/);
    expect(() => loadConfig({ ...dev, RELAY_SETTLE_MS: "50000000" })).toThrow(/RELAY_SETTLE_MS: at most 43200000/);
    expect(loadConfig({ ...dev, RETRY_MAX_SECONDS: "43200", RELAY_SETTLE_MS: "43200000" })).toMatchObject({ RETRY_MAX_SECONDS: 43_200, RELAY_SETTLE_MS: 43_200_000 });
  });

  it("refuses the benchmark's in-memory store and instant provider in production", () => {
    const keys = { MERCHANT_KEYS: JSON.stringify({ acme: [digest] }) };
    expect(() => loadConfig({ ...base, ...keys, EVENT_STORE: "memory" })).toThrow(/never production/);
    expect(() => loadConfig({ ...base, ...keys, PROVIDER_URL: "instant:" })).toThrow(/never production/);
    expect(() => loadConfig({ ...base, ...keys, NOTIFICATION_URL: "instant:" })).toThrow(/never production/);
  });
});
