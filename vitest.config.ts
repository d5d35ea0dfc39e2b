import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
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
