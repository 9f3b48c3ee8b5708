// `npm run demo` against the shared e2e stack, and against nothing.
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { npmRun, stack } from "./helpers.ts";

const npmRunDemo = (env: Record<string, string>) => npmRun("demo", env);

/** A port nothing listens on: bound, then released. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

describe("when the service is running", () => {
  it("creates a payment, prints its four events in order and exits 0", async () => {
    const run = await npmRunDemo({ API_URL: stack.apiUrl, API_KEY: stack.merchantKey, DEMO_TIMEOUT_MS: "30000" });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const printed = [...run.stdout.matchAll(/v(\d)\s+(Payment\w+)\s+\+\d+ ms/g)].map((m) => `${m[1]} ${m[2]}`);
    expect(printed).toEqual(["1 PaymentInitiated", "2 PaymentCreated", "3 PaymentSettled", "4 PaymentCompleted"]);
  });
});

describe("when the provider declines the payment", () => {
  it("prints the failure and exits 1", async () => {
    // Only this test pays 13.13 USD, so the rule touches no other test using the shared simulator.
    const rule = { route: "create", amountEquals: 13.13, currency: "USD", code: "insufficient_funds" };
    const set = await fetch(`${stack.providerUrl}/_sim/settings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ declines: [rule] }) });
    expect(set.status).toBe(200);
    const run = await npmRunDemo({ API_URL: stack.apiUrl, API_KEY: stack.merchantKey, DEMO_AMOUNT: "13.13", DEMO_CURRENCY: "USD" });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/v2\s+PaymentFailed/);
    expect(run.stderr).toBe("demo: payment failed at step create: insufficient_funds\n");
  });
});

describe("when the service is not running", () => {
  it("says so in one line and exits 1", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const run = await npmRunDemo({ API_URL: url, API_KEY: "sk_any" });
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split("\n")).toEqual([`demo: Regis Pay is not answering at ${url} (ECONNREFUSED); start it with \`npm start\``]);
  });
});
