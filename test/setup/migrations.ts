// Applies the D1 migrations (the payments list) to each test file's fresh storage.
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    }
  }
}

await applyD1Migrations(env.READ_MODEL, env.TEST_MIGRATIONS);
