// `npm run rebuild-read-model` against the shared e2e stack: a whole run, a run stopped half-way and resumed, and the
// admin key it will not guess for another machine's service.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import { api, npmRun, stack } from "./helpers.ts";

const npmRunRebuild = (env: Record<string, string>) => npmRun("rebuild-read-model", env, ["ADMIN_KEY", "REBUILD_FROM"]);

const rebuilt = (stdout: string) => Number(/^payments list rebuilt: (\d+) payments$/m.exec(stdout)?.[1]);

beforeAll(async () => {
  expect((await api("/api/payments", { body: { amount: 3.21, currency: "GBP" } })).status).toBe(201);
});

describe("with the service's admin key", () => {
  it("rebuilds every page and says how many payments it replayed", async () => {
    const run = await npmRunRebuild({ API_URL: stack.apiUrl, ADMIN_KEY: stack.adminKey });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(rebuilt(run.stdout)).toBeGreaterThanOrEqual(1);
  });

  it("stopped half-way, prints the continuation to resume from, and resumes there", async () => {
    const first = await fetch(`${stack.apiUrl}/admin/read-model/rebuild`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({}),
    });
    const page = (await first.json()) as { payments: number; continuation: string | null };
    expect(page.payments).toBeGreaterThanOrEqual(1);
    expect(page.continuation).toEqual(expect.any(String));

    // The next page fails (a revoked key): nothing more is done, and the place to resume from is printed.
    const stopped = await npmRunRebuild({ API_URL: stack.apiUrl, ADMIN_KEY: "sk_test_revoked", REBUILD_FROM: page.continuation! });
    expect(stopped.code).toBe(1);
    const [reason, resume] = stopped.stderr.trim().split("\n");
    expect(reason).toMatch(/^rebuild-read-model: stopped after 0 payments: 401 /);
    expect(resume).toBe(`resume with REBUILD_FROM='${page.continuation!.replaceAll("'", "'\\''")}'`);

    // Resumed there with the key, it finishes.
    const resumed = await npmRunRebuild({ API_URL: stack.apiUrl, ADMIN_KEY: stack.adminKey, REBUILD_FROM: page.continuation! });
    expect(resumed.stderr).toBe("");
    expect(resumed.code).toBe(0);
    expect(rebuilt(resumed.stdout)).toBeGreaterThanOrEqual(0);
  });

  it("starts from REBUILD_FROM: one the route never gave is refused at the first page", async () => {
    const run = await npmRunRebuild({ API_URL: stack.apiUrl, ADMIN_KEY: stack.adminKey, REBUILD_FROM: "not-a-continuation" });
    expect(run.code).toBe(1);
    const [reason, resume] = run.stderr.trim().split("\n");
    expect(reason).toMatch(/^rebuild-read-model: stopped after 0 payments: 400 .*validation_failed/);
    expect(resume).toBe("resume with REBUILD_FROM='not-a-continuation'");
  });
});

describe("against a service that answers 503 (Cosmos unavailable, or a read behind)", () => {
  it("asks again when its Retry-After says, and gives up after three answers", async () => {
    const answers: number[] = [];
    const server = createServer((req, res) => {
      req.resume();
      const status = answers.length < 2 ? 503 : 200;
      answers.push(status);
      res.writeHead(status, { "content-type": "application/json", "retry-after": "0" });
      res.end(JSON.stringify(status === 200 ? { payments: 7, continuation: null } : { code: "store_unavailable" }));
    });
    await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const run = await npmRunRebuild({ API_URL: url, ADMIN_KEY: "sk_test_any" });
      expect(run.code).toBe(0);
      expect(rebuilt(run.stdout)).toBe(7);
      expect(answers).toEqual([503, 503, 200]);
      // Three 503s in a row: it stops, and says where to resume (here: the start).
      answers.length = 0;
      const failing = createServer((req, res) => (req.resume(), answers.push(503), res.writeHead(503, { "retry-after": "0" }), res.end("{}")));
      await new Promise<void>((ready) => failing.listen(0, "127.0.0.1", ready));
      try {
        const stopped = await npmRunRebuild({ API_URL: `http://127.0.0.1:${(failing.address() as AddressInfo).port}`, ADMIN_KEY: "sk_test_any" });
        expect(stopped.code).toBe(1);
        expect(stopped.stderr).toMatch(/stopped after 0 payments: 503/);
        expect(answers).toEqual([503, 503, 503]);
      } finally {
        failing.close();
      }
    } finally {
      server.close();
    }
  });
});

describe("without an admin key", () => {
  it("refuses to use this machine's development key for another machine's service, before any request", async () => {
    const run = await npmRunRebuild({ API_URL: "http://payments.example.invalid" });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe("rebuild-read-model: set ADMIN_KEY: http://payments.example.invalid is not this machine's service");
  });
});
