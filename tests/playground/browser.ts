import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { repoRoot } from "../helpers/adapters.ts";

/** Where the playground tests leave their screenshots (gitignored). */
export const ARTEFACTS = join(repoRoot, "artefacts/playground");

/** Debian's Chromium (installed by .ci/run), or CHROMIUM_PATH. */
export function chromiumPath(): string {
  const path = process.env.CHROMIUM_PATH ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
  if (!path) throw new Error("Chromium not found: apt-get install chromium (see .ci/run), or set CHROMIUM_PATH");
  return path;
}

/** Headless Chromium; as root it needs --no-sandbox. */
export function launchChromium(): Promise<Browser> {
  const rootArgs = process.getuid?.() === 0 ? ["--no-sandbox"] : [];
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: [...rootArgs, "--disable-dev-shm-usage"] });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`), fullPage: true });
}

/** Signs `page` in at `url` with `apiKey` through the form, and waits for the shell to say so. */
export async function signIn(page: Page, url: string, apiKey: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("API key").fill(apiKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who").filter({ hasText: "Signed in" }).waitFor();
}

/**
 * Opens a view from the tab bar and waits until it has started: until then it takes no input (playground/ui/app.js),
 * and an input set without actionability checks (a file) would go nowhere.
 */
export async function openView(page: Page, view: string): Promise<void> {
  await page.locator(`#tabs button[data-view="${view}"]`).click();
  await page.locator(`body[data-view="${view}"]`).waitFor({ state: "attached" });
}

/** Holds the page's requests to `url` (a glob) until `release()`; `answered` resolves once a held request has had its answer. */
export async function holdRequests(page: Page, url: string): Promise<{ release: () => void; answered: Promise<void> }> {
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let answer = () => {};
  const answered = new Promise<void>((resolve) => (answer = resolve));
  await page.route(url, async (route) => {
    await held;
    await route.continue();
    answer();
  });
  return { release, answered };
}

/** The page's horizontal overflow in CSS pixels (0: nothing wider than the viewport). */
export const overflow = (page: Page): Promise<number> => page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth");
