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
    const c = loadConfig({ ...base, MERCHANT_KEYS: JSON.stringify({ acme: [digest] }), ADMIN_KEYS: `${digest}, ${digest}`, CURRENCIES: "GBP, JPY", WATCHDOG_MS: "5000" });
    expect(c).toMatchObject({ MERCHANT_KEYS: { acme: [digest] }, ADMIN_KEYS: [digest, digest], CURRENCIES: ["GBP", "JPY"], WATCHDOG_MS: 5000, ENVIRONMENT: "production" });
  });

  it("refuses the benchmark's in-memory store and instant provider in production", () => {
    const keys = { MERCHANT_KEYS: JSON.stringify({ acme: [digest] }) };
    expect(() => loadConfig({ ...base, ...keys, EVENT_STORE: "memory" })).toThrow(/never production/);
    expect(() => loadConfig({ ...base, ...keys, PROVIDER_URL: "instant:" })).toThrow(/never production/);
  });
});
