// Secrets the generated binding types cannot see (they come from `wrangler secret put`, or .dev.vars locally).
interface Secrets {
  COSMOS_KEY: string;
  WEBHOOK_SECRET: string;
  LIVE_TICKET_SECRET: string;
  MERCHANT_KEYS: string;
  ADMIN_KEYS: string;
}
interface Env extends Secrets {}
declare namespace Cloudflare {
  interface Env extends Secrets {}
}
