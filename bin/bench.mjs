#!/usr/bin/env node
// `npm run bench [-- section...]`: runs each benchmark section (bench/<section>.ts) in its own process,
// so one section's memory and threads do not colour the next. Each prints a table and writes
// bench-results/<section>.json.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ALL = ["engine", "adapters", "retrieval", "api", "trainer", "playground"];
const sections = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL;
let failed = 0;
for (const section of sections) {
  const file = join(root, "bench", `${section}.ts`);
  if (!existsSync(file)) {
    console.error(`no benchmark section '${section}' (known: ${ALL.join(", ")})`);
    failed++;
    continue;
  }
  console.log(`\n=== ${section} ===`);
  const run = spawnSync(process.execPath, ["--import", "tsx", file], { cwd: root, stdio: "inherit" });
  if (run.status !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
