#!/usr/bin/env node
// Copies the playground's browser libraries from node_modules into playground/ui/vendor/ (gitignored), so
// that wrangler's [assets] (which serves playground/ on Workers) has them too. Node serves them from
// node_modules directly (hosts/node/assets.ts); run this before `wrangler deploy`.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const uplot = dirname(require.resolve("uplot"));
const out = join(import.meta.dirname, "../playground/ui/vendor");
mkdirSync(out, { recursive: true });
for (const name of ["uPlot.iife.min.js", "uPlot.min.css"]) copyFileSync(join(uplot, name), join(out, name));
console.log(`playground vendor files in ${out}`);
