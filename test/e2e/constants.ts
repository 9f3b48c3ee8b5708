// Settings of the e2e stack: its own keys, and short timers so failures and retries show quickly.
import { createHash } from "node:crypto";
import type { StackKeys } from "../../scripts/stack.ts";

export const e2eDatabase = "regis-pay-e2e";
export const e2eContainer = "events";

export const e2eKeys: StackKeys = {
  merchantId: "e2e",
  merchantKey: "sk_test_e2e_merchant_1",
  adminKey: "sk_test_e2e_admin_1",
  webhookSecret: "e2e-webhook-secret-0123456789",
  ticketSecret: "e2e-live-ticket-secret-0123456789abcdef",
};

/** A second merchant, kept for the rate-limit test so that spending its limit slows no other test. */
export const limitedKey = "sk_test_e2e_limited_1";
const digest = (key: string) => createHash("sha256").update(key).digest("hex");

export const e2eVars = {
  MERCHANT_KEYS: JSON.stringify({ [e2eKeys.merchantId]: [digest(e2eKeys.merchantKey)], limited: [digest(limitedKey)] }),
  ENVIRONMENT: "test",
  LOG_LEVEL: "warn",
  // Regis Pay's own documents (no MerchantId) belong to the e2e merchant.
  LEGACY_MERCHANT_ID: e2eKeys.merchantId,
  RETRY_BASE_SECONDS: "0",
  RELAY_CHECK_MS: "500",
  WATCHDOG_MS: "5000",
  // Recovery within a test's time: a lost message is sent again, an append of unknown outcome settles, a stuck call
  // gives up, in seconds (the same as the fault suite's).
  REDELIVER_AFTER_MS: "3000",
  RELAY_SETTLE_MS: "5000",
  PROVIDER_TIMEOUT_MS: "3000",
  COSMOS_REQUEST_TIMEOUT_MS: "3000",
};
