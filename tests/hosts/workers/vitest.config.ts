import { join } from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const root = join(import.meta.dirname, "../../..");

/**
 * The edge inside workerd (Miniflare), on a local D1 database migrated with the project's migrations, its
 * rate limiter Durable Object, and real inference, retrieval and control nodes on loopback
 * (plane-nodes.global.ts, one set for the whole project) as its INFERENCE_URLS / RETRIEVAL_URL / TRAINER_URL vars.
 */
export default defineConfig({
  plugins: [
    cloudflareTest(async ({ inject }) => ({
      main: join(root, "hosts/workers/worker.ts"),
      wrangler: { configPath: join(root, "wrangler.toml") },
      miniflare: {
        bindings: {
          ADMIN_KEY: "workers-admin-key-0123456789",
          LOG_LEVEL: "silent",
          INFERENCE_URLS: inject("inferenceUrl"),
          RETRIEVAL_URL: inject("retrievalUrl"),
          TRAINER_URL: inject("trainerUrl"),
          NODE_SECRET: inject("nodeSecret"),
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
    globalSetup: [join(import.meta.dirname, "plane-nodes.global.ts")],
    // Model-sized calls (a chat on stories260k, a document's ingest) on a shared 2-core machine.
    testTimeout: 60_000,
  },
});
