// Test projects: "workers" runs on the real Workers runtime; "node" runs the local tools (emulator, simulator).
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        extends: false,
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" } })],
        test: { name: "workers", include: ["test/**/*.test.ts"], exclude: ["test/**/*.node.test.ts", "test/e2e/**"] },
      },
      {
        extends: false,
        test: { name: "node", include: ["test/**/*.node.test.ts"], environment: "node" },
      },
    ],
  },
});
