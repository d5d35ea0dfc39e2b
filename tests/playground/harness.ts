import type { Browser, BrowserContext, Page } from "playwright-core";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";
import { launchChromium, signIn } from "./browser.ts";

/** One real server, one tenant and one headless Chromium page for a playground test file (beforeAll). */
export interface Playground {
  p: TestPlatform;
  key: string;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Every URL the page requested (to check that no key is in one). */
  requested: string[];
  pageErrors: string[];
  consoleErrors: string[];
  /** Signs `target` in with `apiKey` and waits until the page says so. */
  signIn(target: Page, apiKey: string): Promise<void>;
  /** A gauge or counter from the server's /metrics. */
  gauge(name: string): Promise<number>;
  close(): Promise<void>;
}

export async function startPlayground(tenant: string): Promise<Playground> {
  const p = await startTestPlatform({ SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  const { key } = await createTenantWithKey(p, tenant);
  const browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const requested: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  context.on("request", (r) => requested.push(r.url()));
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(`${m.text()} ${m.location().url}`));
  return {
    p, key, browser, context, page, requested, pageErrors, consoleErrors,
    signIn: (target, apiKey) => signIn(target, p.url, apiKey),
    async gauge(name) {
      const text = await (await p.call("GET", "/metrics")).text();
      return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]);
    },
    async close() {
      await browser.close();
      await p.stop();
    },
  };
}
