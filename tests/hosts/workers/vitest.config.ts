import { join } from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const root = join(import.meta.dirname, "../../..");

/** The edge inside workerd (Miniflare), on a local D1 database migrated with the project's migrations. */
export default defineConfig({
  plugins: [
    cloudflareTest(async () => ({
      main: join(root, "hosts/workers/worker.ts"),
      wrangler: { configPath: join(root, "wrangler.toml") },
      miniflare: {
        bindings: {
          ADMIN_KEY: "workers-admin-key-0123456789",
          LOG_LEVEL: "silent",
          TEST_MIGRATIONS: await readD1Migrations(join(root, "services/store/migrations")),
        },
      },
    })),
  ],
  test: {
    name: "workers",
    allowOnly: false, // a stray .only fails the run instead of narrowing it
    include: [join(import.meta.dirname, "**/*.test.ts")],
    setupFiles: [join(import.meta.dirname, "apply-migrations.ts")],
  },
});
