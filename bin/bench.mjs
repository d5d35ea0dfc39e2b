#!/usr/bin/env node
// `npm run bench [-- section [part]...]`: runs each benchmark section (bench/<section>.ts) in its own process,
// so one section's memory and threads do not colour the next. Each prints a table and writes
// bench-results/<section>.json. A word after a section that is not itself a section names a part of it
// (bench/<section>-<part>.ts) to run alone: `npm run bench -- retrieval quality`.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ALL = ["engine", "adapters", "retrieval", "api", "fleet", "trainer", "playground", "evals"];
// Sections run only when named: trainer-profile (where a training step's time goes). A word after a
// section names a part of it: `retrieval quality` runs bench/retrieval-quality.ts.
const args = process.argv.slice(2);
const sections = [];
for (const arg of args) {
  const previous = sections.at(-1);
  if (previous && !ALL.includes(arg) && existsSync(join(root, "bench", `${previous}-${arg}.ts`))) sections[sections.length - 1] = `${previous}-${arg}`;
  else sections.push(arg);
}
if (sections.length === 0) sections.push(...ALL);
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
