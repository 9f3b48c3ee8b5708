// Rebuilds the payments list from Cosmos's change feed through the running service's admin route, page by page.
// Usage: npm run rebuild-read-model   (API_URL defaults to http://127.0.0.1:8787; ADMIN_KEY defaults to the dev key)
import { devKeys } from "./stack.ts";

const api = process.env.API_URL ?? "http://127.0.0.1:8787";
const adminKey = process.env.ADMIN_KEY ?? devKeys().adminKey;

let continuation: string | null = null;
let payments = 0;
do {
  const res = await fetch(`${api}/admin/read-model/rebuild`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ continuation }),
  }).catch(() => null);
  if (!res?.ok) {
    console.error(`rebuild failed: ${res ? `${res.status} ${await res.text()}` : `the service at ${api} is not running`}`);
    process.exit(1);
  }
  const page = (await res.json()) as { payments: number; continuation: string | null };
  payments += page.payments;
  continuation = page.continuation;
} while (continuation);
console.log(`payments list rebuilt: ${payments} payments`);
