/**
 * Playground benchmark: the page in headless Chromium (Debian's chromium, as the tests) against the real
 * platform on loopback, each run in a fresh browser context (cold cache). Per run: first contentful
 * paint, time to interactive (the page's `switchyard:interactive` mark: modules loaded, handlers bound),
 * and the bytes it downloaded as sent (compressed), for the sign-in page alone and after signing in and
 * opening every view (uPlot included). Goals: under 200 KB compressed, first paint under 300 ms.
 * Run: `npm run bench -- playground`; writes bench-results/playground.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { loadConfig } from "../hosts/node/config.ts";
import { startPlatform } from "../hosts/node/server.ts";
import { launchChromium } from "../tests/playground/browser.ts";
import { percentile, report } from "./report.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const ADMIN = "bench-admin-key-0123456789";
const VIEWS = ["Compare", "Knowledge", "Adapters", "Fine-tuning", "Evaluations", "Chat"];

const dataDir = mkdtempSync(join(tmpdir(), "sy-bench-playground-"));
const platform = await startPlatform(
  loadConfig({ SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_PORT: "0", SWITCHYARD_LOG_LEVEL: "warn", SWITCHYARD_ADMIN_KEY: ADMIN, SWITCHYARD_REQUESTS_PER_MINUTE: "0", SWITCHYARD_TRAINER: "off" }),
  { announce: () => {} },
);

async function tenantKey(): Promise<string> {
  const post = (path: string, json: unknown) =>
    fetch(`${platform.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body: JSON.stringify(json) }).then((r) => r.json() as Promise<Record<string, string>>);
  const tenant = await post("/v1/admin/tenants", { name: "bench" });
  return (await post(`/v1/admin/tenants/${tenant.id}/keys`, {})).key!;
}

/** Bytes of the page's own files as sent (body, compressed when it was), API calls left out. */
function assetBytes(page: Page, into: { bytes: number; files: number; pending: Promise<void>[] }) {
  page.on("requestfinished", (request) => {
    const path = new URL(request.url()).pathname;
    if (path !== "/" && !path.startsWith("/ui/")) return;
    into.pending.push(request.sizes().then((s) => {
      into.bytes += s.responseBodySize;
      into.files++;
    }));
  });
}

const key = await tenantKey();
const browser = await launchChromium();
const rows: Array<{ paint: number; interactive: number; signInKB: number; allViewsKB: number; files: number }> = [];
try {
  for (let run = 0; run < RUNS; run++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const seen = { bytes: 0, files: 0, pending: [] as Promise<void>[] };
    assetBytes(page, seen);
    await page.goto(platform.url, { waitUntil: "load" });
    await page.locator("body[data-ready]").waitFor();
    const timings = (await page.evaluate(`({
      paint: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN,
      interactive: performance.getEntriesByName("switchyard:interactive")[0]?.startTime ?? NaN,
    })`)) as { paint: number; interactive: number };
    await Promise.all(seen.pending);
    const signInBytes = seen.bytes;

    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#who").filter({ hasText: "Signed in" }).waitFor();
    for (const view of VIEWS) await page.getByRole("button", { name: view, exact: true }).click();
    await page.evaluate(`new Promise((resolve) => { const s = document.createElement("script"); s.src = "/ui/vendor/uPlot.iife.min.js"; s.onload = resolve; document.head.append(s); })`);
    await page.waitForLoadState("networkidle");
    await Promise.all(seen.pending);
    rows.push({ paint: timings.paint, interactive: timings.interactive, signInKB: signInBytes / 1024, allViewsKB: seen.bytes / 1024, files: seen.files });
    await context.close();
  }
} finally {
  await browser.close();
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}

const stat = (name: string, values: number[], unit: string, goal: string) => ({ metric: name, p50: percentile(values, 50), p90: percentile(values, 90), max: Math.max(...values), unit, goal });
report(
  "playground",
  [
    stat("first contentful paint", rows.map((r) => r.paint), "ms", "< 300"),
    stat("time to interactive", rows.map((r) => r.interactive), "ms", ""),
    stat("downloaded: sign-in page", rows.map((r) => r.signInKB), "KB compressed", "< 200"),
    stat("downloaded: every view + uPlot", rows.map((r) => r.allViewsKB), "KB compressed", "< 200"),
  ],
  { runs: RUNS, files: rows[0]?.files, samples: rows },
);
