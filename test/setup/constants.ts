// Settings shared by the test setup (Node) and the tests (workerd).

/** The public, well-known Cosmos DB emulator key (not a secret). */
export const emulatorKey = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
export const testDatabase = "regis-pay-test";
export const testContainer = "events";
export const webhookSecret = "test-webhook-secret-0123456789";
export const ticketSecret = "test-live-ticket-secret-0123456789abcdef";

/** API keys of the tests' merchants and operator (their SHA-256 digests are configured). */
export const keys = {
  merchantA: "sk_test_merchant_a_1",
  merchantARotated: "sk_test_merchant_a_2",
  merchantB: "sk_test_merchant_b_1",
  admin: "sk_test_admin_1",
};
