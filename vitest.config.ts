import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Two files at a time even on 2 cores (vitest's default is cores - 1): many files spend their time
    // waiting on child processes, servers and browsers, so the suite takes ~9 min instead of ~15.
    maxWorkers: 2,
    reporters: ["default", "./tests/helpers/unfinished-files-reporter.ts"],
    projects: [
      {
        test: {
          name: "node",
          include: ["tests/**/*.test.ts"],
          exclude: ["tests/hosts/workers/**", "node_modules/**"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          pool: "forks",
          allowOnly: false, // a stray .only fails the run instead of narrowing it
        },
      },
      "tests/hosts/workers/vitest.config.ts",
    ],
  },
});
