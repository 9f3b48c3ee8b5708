// Rebuilds the payments list from Cosmos's change feed through the running service's admin route, page by page.
// Usage: npm run rebuild-read-model
// Env: API_URL (default http://127.0.0.1:8787); ADMIN_KEY (required unless API_URL is this machine, where the key of
// `npm start` is the default); REBUILD_FROM, a continuation to resume from (printed when a run stops half-way).
import { readDevKeys } from "./stack.ts";

const api = (process.env.API_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");

function fail(message: string): never {
  console.error(`rebuild-read-model: ${message}`);
  process.exit(1);
}

const local = ["127.0.0.1", "localhost", "[::1]"].includes(URL.parse(api)?.hostname ?? "");
const adminKey = process.env.ADMIN_KEY || (local ? readDevKeys()?.adminKey : undefined);
if (!adminKey) fail(local ? "no admin key: set ADMIN_KEY, or run `npm start` once (it writes .local/dev-keys.json)" : `set ADMIN_KEY: ${api} is not this machine's service`);

/** One page; a 503 (Cosmos unavailable, or its read of a stream behind) is asked again when its Retry-After says, twice. */
async function rebuildPage(continuation: string | null) {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${api}/admin/read-model/rebuild`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ continuation }),
    }).catch(() => null);
    if (res?.status !== 503 || attempt === 3) return res;
    await res.body?.cancel();
    await new Promise((wait) => setTimeout(wait, Number(res.headers.get("retry-after") ?? 1) * 1000));
  }
}

let continuation: string | null = process.env.REBUILD_FROM || null;
let payments = 0;
do {
  const res = await rebuildPage(continuation);
  if (!res?.ok) {
    const why = res ? `${res.status} ${await res.text()}` : `the service at ${api} is not answering`;
    // Pages already rebuilt stay rebuilt: a run resumed from here does only the rest.
    fail(`stopped after ${payments} payments: ${why}${continuation ? `\nresume with REBUILD_FROM='${continuation.replaceAll("'", "'\\''")}'` : ""}`);
  }
  const page = (await res.json()) as { payments: number; continuation: string | null };
  payments += page.payments;
  continuation = page.continuation;
} while (continuation);
console.log(`payments list rebuilt: ${payments} payments`);
