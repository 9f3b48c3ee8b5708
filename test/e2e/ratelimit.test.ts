// Cloudflare's rate-limiting binding through the real wrangler dev: a merchant over its limit gets 429 problems
// with Retry-After, per merchant (another merchant is not slowed).
import { expect, it } from "vitest";
import { api } from "./helpers.ts";
import { limitedKey } from "./constants.ts";

it("answers 429 with Retry-After once a merchant spends its limit, and only that merchant", async () => {
  // wrangler.toml's local limit is 200 requests per 10-second window per merchant key (fixed windows): sending
  // 50 at a time, a window is spent well before it ends.
  let limited: Awaited<ReturnType<typeof api>> | undefined;
  for (let sent = 0; sent < 2000 && !limited; sent += 50) {
    const answers = await Promise.all(Array.from({ length: 50 }, () => api(`/api/payments/${crypto.randomUUID()}`, { key: limitedKey })));
    limited = answers.find((a) => a.status === 429);
    expect(answers.every((a) => a.status === 404 || a.status === 429)).toBe(true);
  }
  expect(limited, "no 429 within 2000 requests").toBeDefined();
  expect(limited!.headers.get("retry-after")).toBe("10");
  expect(limited!.headers.get("content-type")).toBe("application/problem+json");
  expect(limited!.body).toMatchObject({ status: 429, code: "rate_limited" });
  expect((await api(`/api/payments/${crypto.randomUUID()}`)).status).toBe(404);
}, 120_000);
