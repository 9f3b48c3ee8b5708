// The dashboard in real headless Chromium (playwright-core) against the whole local stack; it also takes the README's screenshots.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, until as untilTrue, type Stack, type StackKeys } from "../../scripts/stack.ts";
import { leftovers } from "../e2e/setup.ts";
import { chromiumArgs, findChromium } from "./chromium.ts";

// The README's screenshots are refreshed only on request (UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean.
const screenshots = process.env.UPDATE_SCREENSHOTS ? resolve(import.meta.dirname, "../../public/docs/screenshots") : mkdtempSync(join(tmpdir(), "regis-shots-"));
const keys: StackKeys = {
  merchantId: "browser",
  merchantKey: "sk_test_browser_merchant_1",
  adminKey: "sk_test_browser_admin_1",
  webhookSecret: "browser-webhook-secret-0123456789",
  ticketSecret: "browser-live-ticket-secret-0123456789abcdef",
};
const desktop = { width: 1200, height: 800 };
const phone = { width: 375, height: 812 };
/** How long the lifecycle and the read model may take; polled, never slept. */
const lifecycleMs = 30_000;

let stack: Stack | undefined;
let browser: Browser | undefined;
let persistTo: string | undefined;
let page: Page;
const pageErrors: string[] = [];
/** The Idempotency-Key of every create request, by the amount it asked for. */
const createKeys: { amount: unknown; key: string }[] = [];

const shot = (name: string, fullPage = false) => page.screenshot({ path: join(screenshots, `${name}.png`), fullPage });
/** Changes the provider simulator's fault settings. */
async function simulator(settings: Record<string, unknown>) {
  const res = await fetch(`${stack!.providerUrl}/_sim/settings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(settings) });
  expect(res.status).toBe(200);
}

/** Waits for what the page should come to show; on time-out, says what it shows instead and how the Worker fared. */
async function until(locator: Locator, what: string, timeout = lifecycleMs) {
  try {
    await locator.waitFor({ timeout });
  } catch (e) {
    const shown = (await locator.page().locator("main").innerText().catch(() => "(nothing)")).slice(0, 2000);
    const log = stack ? readFileSync(stack.logFile, "utf8").replace(/\x1b\[[\d;]*m/g, "").trim().split("\n").slice(-15).join("\n") : "";
    throw new Error(`${what} did not happen within ${timeout} ms.\nThe page shows:\n${shown}\n\nLast lines of ${stack?.logFile}:\n${log}`, { cause: e });
  }
}
// Page-side code as text: this file is type-checked without the DOM library.
const noHorizontalScroll = () => page.evaluate("document.documentElement.scrollWidth <= window.innerWidth");

beforeAll(async () => {
  // Installing Chromium (first run on a bare machine) is why this hook may take minutes; later runs take seconds.
  const executablePath = findChromium();
  persistTo = mkdtempSync(join(tmpdir(), "regis-pay-browser-"));
  mkdirSync(screenshots, { recursive: true });
  const started = await Promise.allSettled([
    chromium.launch({ executablePath, args: chromiumArgs }).then((b) => (browser = b)),
    startStack({
      apiPort: 0,
      cosmosPort: 0,
      providerPort: 0,
      persistTo,
      logFile: join(persistTo, "worker.log"),
      keys,
      quiet: true,
      // The heartbeat test pings every 200 ms.
      vars: { ENVIRONMENT: "test", LOG_LEVEL: "warn", RETRY_BASE_SECONDS: "0", RELAY_CHECK_MS: "500", LIVE_PING_MIN_MS: "100" },
    }).then((s) => (stack = s)),
  ]);
  for (const result of started) if (result.status === "rejected") throw result.reason;
  page = await browser!.newPage({ viewport: desktop });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/api/payments")
      createKeys.push({ amount: (JSON.parse(r.postData() ?? "{}") as { amount?: unknown }).amount, key: r.headers()["idempotency-key"] ?? "" });
  });
}, 300_000);

afterAll(async () => {
  // The stack is stopped even if the browser fails to close.
  await browser?.close().catch((e: unknown) => console.error("closing Chromium failed:", e));
  if (stack) {
    await stack.stop();
    const left = await leftovers(stack);
    if (left.length > 0) throw new Error(`the stack left things running: ${left.join("; ")}`);
  }
  if (persistTo) rmSync(persistTo, { recursive: true, force: true });
  if (!process.env.UPDATE_SCREENSHOTS) rmSync(screenshots, { recursive: true, force: true });
}, 30_000);

/** A page in a context of its own, prepared by `prepare` and signed in; the test closes its context (this does if signing in fails). */
async function signedInPage(prepare: (context: BrowserContext) => Promise<unknown> = async () => {}) {
  const context = await browser!.newContext({ viewport: desktop });
  try {
    await prepare(context);
    const page = await context.newPage();
    await page.goto(`${stack!.apiUrl}/`);
    await page.getByLabel("Merchant API key").fill(keys.merchantKey);
    await page.getByRole("button", { name: "Continue" }).click();
    await page.getByRole("heading", { name: "Payments" }).waitFor();
    return { context, page };
  } catch (e) {
    await context.close();
    throw e;
  }
}

/** Creates a payment through the API, as another client of the merchant would. */
async function createThroughApi(amount: number) {
  const res = await fetch(`${stack!.apiUrl}/api/payments`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys.merchantKey}`, "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
    body: JSON.stringify({ amount, currency: "EUR" }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}
const payment = async (id: string) => (await fetch(`${stack!.apiUrl}/api/payments/${id}`, { headers: { authorization: `Bearer ${keys.merchantKey}` } })).json() as Promise<{ status: string; refunds: unknown[] }>;
const statusOf = async (id: string) => (await payment(id)).status;

describe("the merchant dashboard", () => {
  describe("when no key has been entered in this tab", () => {
    it("asks for the merchant key and keeps it in session storage only", async () => {
      await page.goto(`${stack!.apiUrl}/`);
      await page.getByLabel("Merchant API key").waitFor();
      await shot("key-prompt");

      await page.getByLabel("Merchant API key").fill("sk_test_not_a_key");
      await page.getByRole("button", { name: "Continue" }).click();
      await page.getByRole("alert").filter({ hasText: "401" }).waitFor();

      await page.getByLabel("Merchant API key").fill(keys.merchantKey);
      await page.getByRole("button", { name: "Continue" }).click();
      await page.getByRole("heading", { name: "Payments" }).waitFor();
      const stored = await page.evaluate("({ session: Object.values(sessionStorage), local: localStorage.length, cookies: document.cookie })");
      expect(stored).toEqual({ session: [keys.merchantKey], local: 0, cookies: "" });
    });
  });

  describe("when the create form is sent with an amount GBP cannot hold", () => {
    it("shows the API's error inline next to the amount field", async () => {
      await page.getByRole("link", { name: "New payment" }).first().click();
      await page.getByLabel("Amount").fill("86.123");
      await page.getByLabel("Currency").selectOption("GBP");
      await page.getByRole("button", { name: "Create payment" }).click();

      const error = page.locator("#amount-error");
      await error.waitFor();
      expect(await error.textContent()).toMatch(/decimals/);
      // Next to the field: in the amount's own group, and announced with it.
      expect(await page.locator(".field:has(#amount) #amount-error").count()).toBe(1);
      expect(await page.getByLabel("Amount").getAttribute("aria-describedby")).toContain("amount-error");
      expect(await page.getByLabel("Amount").getAttribute("aria-invalid")).toBe("true");
      expect(page.url()).toMatch(/#\/new$/);
      await shot("create-form-error");
    });
  });

  describe("when a valid payment is created from the form", () => {
    let paymentId = "";

    it("opens the payment's page and follows its timeline live until completed", async () => {
      await page.getByLabel("Amount").fill("86.10");
      // A key that is also a name every object inherits is still the merchant's to use.
      await page.getByRole("button", { name: "Add metadata" }).click();
      await page.locator(".meta-key").last().fill("constructor");
      await page.locator(".meta-value").last().fill("shop-1");
      await page.getByRole("button", { name: "Create payment" }).dblclick();
      await page.waitForURL(/#\/payments\/[0-9a-f-]{36}$/);
      paymentId = page.url().split("/").pop()!;

      await until(page.locator("#timeline [data-event-type=PaymentCompleted]"), "The timeline reaching PaymentCompleted");
      // Through the WebSocket, not the polling fallback.
      await page.getByText("Live: events appear as they happen").waitFor();
      const types = await page.locator("#timeline li").evaluateAll((items) => items.map((li) => li.getAttribute("data-event-type")));
      expect(types).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted"]);
      // The page shows one version of the payment: a timeline at PaymentCompleted means stages at completed.
      expect(await page.locator(".stage.done").count()).toBe(4);
      expect(await page.locator("h1").textContent()).toBe("86.10 GBP");
      await page.locator(".title-row .status", { hasText: "Completed" }).waitFor();

      // However many requests the double click sent, they carried one key, so there is one payment: the one the API holds.
      const sent = createKeys.filter((c) => c.amount === 86.1).map((c) => c.key);
      expect(sent.length).toBeGreaterThan(0);
      expect(new Set(sent).size).toBe(1);
      const res = await fetch(`${stack!.apiUrl}/api/payments/${paymentId}`, { headers: { authorization: `Bearer ${keys.merchantKey}` } });
      expect(await res.json()).toMatchObject({ id: paymentId, status: "completed", amount: 86.1, currency: "GBP", metadata: { constructor: "shop-1" } });
      await shot("payment-completed", true);

      await page.setViewportSize(phone);
      expect(await noHorizontalScroll()).toBe(true);
      await shot("payment-completed-phone", true);
      await page.setViewportSize(desktop);
    }, lifecycleMs + 15_000);

    it("shows it in the payments list once the read model has it", async () => {
      await page.getByRole("link", { name: "Payments", exact: true }).click();
      const row = page.locator(`tr[data-id="${paymentId}"]`);
      // The list refreshes itself every few seconds; the read model catches up from the event queue.
      await until(row.filter({ hasText: "Completed" }), "The list showing the payment as completed");
      expect(await row.locator("td[data-label=Amount]").textContent()).toBe("86.10");
      expect(await row.locator("td[data-label=Currency]").textContent()).toBe("GBP");
      expect(await row.locator("td[data-label=Created]").textContent()).toMatch(/ago$/);
      await shot("payments-list");

      await page.setViewportSize(phone);
      expect(await noHorizontalScroll()).toBe(true);
      await page.setViewportSize(desktop);
      expect(pageErrors).toEqual([]);
    }, lifecycleMs + 5_000);
  });

  describe("when the browser cannot open the live WebSocket", () => {
    /** A page of its own whose WebSocket constructor throws, signed in; the test closes its context (this does if signing in fails). */
    async function pollingPage() {
      const { context, page: blocked } = await signedInPage((context) => context.addInitScript({ content: "window.WebSocket = class { constructor() { throw new Error('WebSocket blocked by the test'); } };" }));
      return { context, blocked };
    }

    it("falls back to polling every second and still follows the lifecycle to completed", async () => {
      const { context, blocked } = await pollingPage();
      try {
        // The provider holds the settlement until the page has shown the payment waiting for it; then it moves on.
        await simulator({ hold: ["settle"] });
        const id = await createThroughApi(12.34);
        await blocked.goto(`${stack!.apiUrl}/#/payments/${id}`);
        await blocked.getByText("checking every second").waitFor();
        await blocked.locator(".stage", { hasText: "waiting…" }).first().waitFor();
        await simulator({ hold: [] });
        await until(blocked.locator("#timeline [data-event-type=PaymentCompleted]"), "The polled timeline reaching PaymentCompleted");
        expect(await blocked.locator(".stage.done").count()).toBe(4);
      } finally {
        await simulator({ hold: [] });
        await context.close();
      }
    }, lifecycleMs + 10_000);

    it("shows events read ahead of the payment only with the payment as of them", async () => {
      const { context, blocked } = await pollingPage();
      try {
        // Settled, its notification held. The page's first read of the events is answered only once the payment has
        // completed (the notification let go), so the payment it read beside them, at settled, is behind them.
        await simulator({ hold: ["notify"] });
        const id = await createThroughApi(23.45);
        expect(await untilTrue(async () => (await statusOf(id)) === "settled", lifecycleMs, 50)).toBe(true);
        // The page's first read of the payment is answered at settled; every later one waits at a gate, so what the
        // page shows meanwhile is all it has.
        let reads = 0;
        let answered = false;
        let waiting = false;
        let eventsRead = false;
        let open = () => {};
        const gate = new Promise<void>((resolve) => (open = resolve));
        await blocked.route(`**/api/payments/${id}`, async (route) => {
          if (reads++ === 0) {
            const response = await route.fetch();
            answered = true;
            return route.fulfill({ response });
          }
          waiting = true;
          await gate;
          await route.continue();
        });
        await blocked.route(`**/api/payments/${id}/events?*`, async (route) => {
          expect(await untilTrue(() => answered, lifecycleMs, 10)).toBe(true);
          await simulator({ hold: [] });
          expect(await untilTrue(async () => (await statusOf(id)) === "completed", lifecycleMs, 50)).toBe(true);
          await route.continue();
          eventsRead = true;
        });
        await blocked.goto(`${stack!.apiUrl}/#/payments/${id}`);
        expect(await untilTrue(() => waiting && eventsRead, lifecycleMs, 20)).toBe(true);
        // The page holds every event and the payment at settled: it shows the payment at settled, events and stages.
        await until(blocked.locator("#timeline [data-event-type=PaymentSettled]"), "The timeline showing PaymentSettled");
        const shown = () => blocked.locator("#timeline li").evaluateAll((items) => items.map((li) => li.getAttribute("data-event-type")));
        expect(await shown()).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentSettled"]);
        expect(await blocked.locator(".stage.done").count()).toBe(3);
        open();
        await until(blocked.locator("#timeline [data-event-type=PaymentCompleted]"), "The timeline reaching PaymentCompleted");
        expect(await blocked.locator(".stage.done").count()).toBe(4);
        expect(await shown()).toEqual(["PaymentInitiated", "PaymentCreated", "PaymentSettled", "PaymentCompleted"]);
      } finally {
        await simulator({ hold: [] });
        await context.close();
      }
    }, lifecycleMs + 10_000);
  });
  describe("when reads fail, or the live connection goes quiet", () => {
    /** A problem+json answer, as the API gives it. */
    const problem = (status: number, title: string, code: string) => ({ status, contentType: "application/problem+json", body: JSON.stringify({ type: "about:blank", title, status, code }) });
    const problem503 = problem(503, "Service unavailable", "service_unavailable");

    it("recovers from a failed first read of the events, and sends a refund retried after an unclear failure under one key", async () => {
      const { context, page: p } = await signedInPage();
      try {
        const id = await createThroughApi(34.56);
        expect(await untilTrue(async () => (await statusOf(id)) === "completed", lifecycleMs, 50)).toBe(true);
        // The page's first read of the events fails: it is read again, and the page goes live all the same.
        let eventReads = 0;
        await p.route(`**/api/payments/${id}/events?*`, (route) => (eventReads++ === 0 ? route.fulfill(problem503) : route.continue()));
        await p.goto(`${stack!.apiUrl}/#/payments/${id}`);
        await until(p.locator("#timeline [data-event-type=PaymentCompleted]"), "The timeline reaching PaymentCompleted");
        await p.getByText("Live: events appear as they happen").waitFor();
        expect(eventReads).toBeGreaterThan(1);

        // A refund's first send gets a 503 (as if its answer was lost); the amount retyped and sent again is accepted,
        // and the read of the payment after it fails: the form closes without an error.
        const sentKeys: string[] = [];
        let paymentReadsToFail = 0;
        await p.route(`**/api/payments/${id}/refunds`, async (route) => {
          sentKeys.push(route.request().headers()["idempotency-key"] ?? "");
          if (sentKeys.length === 1) return route.fulfill(problem503);
          paymentReadsToFail = 1;
          await route.continue();
        });
        await p.route(`**/api/payments/${id}`, (route) => (paymentReadsToFail-- > 0 ? route.fulfill(problem503) : route.continue()));
        await p.getByRole("button", { name: "Refund…" }).click();
        await p.getByLabel("Amount to refund").fill("1.00");
        await p.getByRole("button", { name: "Refund", exact: true }).click();
        await p.locator("#refund .form-error").waitFor();
        await p.getByLabel("Amount to refund").fill("1");
        await p.getByLabel("Amount to refund").fill("1.00");
        await p.getByRole("button", { name: "Refund", exact: true }).click();
        await p.locator("#refund").waitFor({ state: "hidden" });
        expect(await p.locator("#refund .form-error").isVisible()).toBe(false);
        expect(sentKeys).toHaveLength(2);
        expect(new Set(sentKeys).size).toBe(1);
        expect(await untilTrue(() => paymentReadsToFail === 0, 10_000, 20)).toBe(true); // the read after the refund was answered 503
        expect((await payment(id)).refunds).toHaveLength(1);
      } finally {
        await context.close();
      }
    }, lifecycleMs + 15_000);

    it("sends a payment retried after an unclear failure under its first key, even from the form opened again after signing in again", async () => {
      const { context, page: p } = await signedInPage();
      try {
        const sent: string[] = [];
        const problem401 = problem(401, "Unauthorized", "unauthorized");
        await p.route("**/api/payments", async (route) => {
          if (route.request().method() !== "POST") return route.continue();
          sent.push(route.request().headers()["idempotency-key"] ?? "");
          // No answer that says whether it was made, then a refusal before the request is read (the key).
          return sent.length === 1 ? route.fulfill(problem503) : sent.length === 2 ? route.fulfill(problem401) : route.continue();
        });
        const unclear = p.getByText("An earlier attempt to create a payment got no clear answer");
        const create = async () => {
          await p.getByLabel("Amount").fill("56.78");
          await p.getByRole("button", { name: "Create payment" }).click();
        };
        await p.getByRole("link", { name: "New payment" }).first().click();
        expect(await unclear.count()).toBe(0);
        await create();
        await p.locator(".form-error").filter({ hasText: "Service unavailable" }).waitFor();
        // Left, and opened again: it says why, and sends the same key.
        await p.getByRole("link", { name: "Back to payments" }).click();
        await p.getByRole("link", { name: "New payment" }).first().click();
        await unclear.waitFor();
        await create();
        // Refused with 401: the key prompt, then the form again, which still holds the unclear attempt's key.
        await p.getByLabel("Merchant API key").fill(keys.merchantKey);
        await p.getByRole("button", { name: "Continue" }).click();
        await unclear.waitFor();
        await create();
        await p.waitForURL(/#\/payments\/[0-9a-f-]{36}$/);
        expect(sent).toHaveLength(3);
        expect(new Set(sent).size).toBe(1);
        // Created: the next form is a new payment, under a new key.
        await p.getByRole("link", { name: "Payments", exact: true }).click();
        await p.getByRole("link", { name: "New payment" }).first().click();
        expect(await unclear.count()).toBe(0);
        await create();
        await p.waitForURL(/#\/payments\/[0-9a-f-]{36}$/);
        expect(sent).toHaveLength(4);
        expect(sent[3]).not.toBe(sent[0]);
      } finally {
        await context.close();
      }
    }, lifecycleMs);

    it("falls back to polling when the live connection stops answering pings (half-open), and keeps following the payment", async () => {
      let swallowPings = false;
      let pongs = 0;
      const { context, page: p } = await signedInPage(async (context) => {
        await context.addInitScript({ content: "globalThis.regisTimers = { heartbeatMs: 200, helloTimeoutMs: 1000 };" });
        // The socket goes through the test: it forwards everything until told to lose the page's pings.
        await context.routeWebSocket(/\/live\?ticket=/, (ws) => {
          const server = ws.connectToServer();
          ws.onMessage((m) => void (swallowPings && m === "ping" ? undefined : server.send(m)));
          server.onMessage((m) => ((pongs += m === "pong" ? 1 : 0), ws.send(m)));
        });
      });
      try {
        const id = await createThroughApi(45.67);
        await p.goto(`${stack!.apiUrl}/#/payments/${id}`);
        await p.getByText("Live: events appear as they happen").waitFor();
        // Answered pings keep it live.
        expect(await untilTrue(() => pongs >= 3, 10_000, 20)).toBe(true);
        expect(await p.locator(".live").textContent()).toBe("Live: events appear as they happen");
        swallowPings = true;
        await p.getByText("Live connection down: checking every second").waitFor({ timeout: 10_000 });
        await until(p.locator("#timeline [data-event-type=PaymentCompleted]"), "The timeline reaching PaymentCompleted");
      } finally {
        await context.close();
      }
    }, lifecycleMs + 15_000);
  });
});
