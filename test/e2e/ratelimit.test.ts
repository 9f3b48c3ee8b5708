// Cloudflare's rate-limiting binding through the real wrangler dev: a merchant over its limit gets 429 problems
// with Retry-After, per merchant (another merchant is not slowed).
import { expect, it } from "vitest";
import { api } from "./helpers.ts";
import { limitedKey } from "./constants.ts";

it("answers 429 with Retry-After once a merchant spends its limit, and only that merchant", async () => {
  // wrangler.toml's limit is 1200 requests per 60 s per merchant key; a few more are sent, in small batches.
  let limited: Awaited<ReturnType<typeof api>> | undefined;
  for (let sent = 0; sent < 1500 && !limited; sent += 25) {
    const answers = await Promise.all(Array.from({ length: 25 }, () => api(`/api/payments/${crypto.randomUUID()}`, { key: limitedKey })));
    limited = answers.find((a) => a.status === 429);
    expect(answers.every((a) => a.status === 404 || a.status === 429)).toBe(true);
  }
  expect(limited, "no 429 within 1500 requests").toBeDefined();
  expect(limited!.headers.get("retry-after")).toBe("60");
  expect(limited!.headers.get("content-type")).toBe("application/problem+json");
  expect(limited!.body).toMatchObject({ status: 429, code: "rate_limited" });
  expect((await api(`/api/payments/${crypto.randomUUID()}`)).status).toBe(404);
}, 120_000);
