/**
 * The playground in real headless Chromium against the real server (stories260k, SQLite, hnswlib): sign
 * in, chat streams and Stop cancels it on the server, knowledge upload and search, adapter upload into
 * the pickers (Compare, streamed and blind, is in compare-stream.test.ts), and a fine-tuning job's
 * loss chart gaining points (the real trainer worker, in this process, with the stand-in training loop).
 * Every URL the page requests is checked for the key. Screenshots go to artefacts/playground/.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import { STORIES, zipOf } from "../helpers/adapters.ts";
import { ADMIN_KEY, createTenantWithKey, type TestPlatform } from "../helpers/platform.ts";
import { holdRequests, openView, screenshot } from "./browser.ts";
import { startPlayground, type Playground } from "./harness.ts";

let pg: Playground;
let p: TestPlatform;
let key: string;
let page: Page;
let trainer: TrainerProcess | undefined;

beforeAll(async () => {
  pg = await startPlayground("playground");
  ({ p, key, page } = pg);
}, 120_000);
afterAll(async () => {
  await trainer?.close();
  await pg?.close();
});

const gauge = (name: string) => pg.gauge(name);
const signIn = (target: Page, apiKey: string) => pg.signIn(target, apiKey);

describe("the playground", () => {
  it("serves the page at / and signs in with a tenant key kept in session storage", async () => {
    const res = await p.call("GET", "/", { headers: { "accept-encoding": "gzip" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
    await page.goto(p.url);
    await page.getByLabel("API key").fill("sy_key_wrong");
    await page.getByLabel("API key").press("Enter");
    await expect.poll(() => page.locator("#sign-in-error").textContent()).toContain("Incorrect or revoked API key");
    expect(await page.evaluate('sessionStorage.getItem("switchyard.apiKey")')).toBeNull();
    await signIn(page, key);
    expect(await page.locator("#who").textContent()).toContain("playground");
    expect(await page.evaluate('sessionStorage.getItem("switchyard.apiKey")')).toBe(key);
    await page.locator("#view-chat").waitFor({ state: "visible" });
    await screenshot(page, "chat-empty");
  });

  it("streams a chat answer and Stop cancels the generation on the server", async () => {
    const request = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 400, temperature: 1, seed: 1 };
    const before = await gauge("switchyard_engine_decode_steps");
    const whole = await (await p.call("POST", "/v1/chat/completions", { key, json: request })).json();
    expect(whole.usage.completion_tokens).toBe(400); // this seed writes no end of text
    const fullRun = (await gauge("switchyard_engine_decode_steps")) - before;

    await page.locator("#chat-strategy").selectOption("prompt");
    await page.locator("#chat-temperature").fill("1");
    await page.locator("#chat-max-tokens").fill("400");
    await page.locator("#chat-seed").fill("1");
    await page.locator("#chat-input").fill("Once upon a time");
    const start = await gauge("switchyard_engine_decode_steps");
    await page.getByRole("button", { name: "Send" }).click();
    const answer = page.locator("#chat-log li.assistant").first();
    await answer.locator(".content").filter({ hasText: /\S/ }).waitFor(); // tokens are arriving
    // Send moved the focus to Stop: the keyboard stops it (a click's actionability checks take longer than this tiny model's answer).
    expect(await page.evaluate("document.activeElement.id")).toBe("chat-stop");
    await page.keyboard.press("Enter");
    await expect.poll(() => answer.getAttribute("data-state")).toBe("stopped");
    await expect.poll(async () => (await gauge("switchyard_engine_running_sequences")) + (await gauge("switchyard_engine_waiting_requests"))).toBe(0);
    const steps = (await gauge("switchyard_engine_decode_steps")) - start;
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThan(fullRun);
    await screenshot(page, "chat-stopped");

    // A whole answer shows the switchyard object and the token usage.
    await page.locator("#chat-max-tokens").fill("8");
    await page.locator("#chat-input").fill("Lily had a cat");
    await page.locator("#chat-input").press("Enter");
    const last = page.locator("#chat-log li.assistant").last();
    await expect.poll(() => last.getAttribute("data-state")).toBe("done");
    const meta = await page.locator("#chat-meta").textContent();
    expect(meta).toContain("Completion tokens8");
    expect(meta).toContain("Strategyprompt");
    expect(await answer.getAttribute("data-state")).toBe("stopped"); // the first answer stays marked
  });

  it("uploads a document that turns ready and is found by dense, bm25 and hybrid search", async () => {
    // The view takes no input until its module has started (a file picked earlier went nowhere: CI's loaded machine
    // took long enough to load it that the upload below was lost in 3 runs of 9). Held back here, to see it.
    const knowledgeModule = await holdRequests(page, "**/knowledge.js");
    await page.getByRole("button", { name: "Knowledge" }).click();
    const view = page.locator("#view-knowledge");
    await expect.poll(() => view.getAttribute("aria-busy")).toBe("true");
    expect(await view.evaluate((section) => (section as { inert?: boolean }).inert)).toBe(true);
    knowledgeModule.release();
    await page.locator('body[data-view="knowledge"]').waitFor({ state: "attached" });
    expect(await view.evaluate((section) => (section as { inert?: boolean }).inert)).toBe(false);
    expect(await view.getAttribute("aria-busy")).toBeNull();
    await page.unroute("**/knowledge.js");

    const text = "# The lighthouse\n\nThe keeper of the old lighthouse, Marisol Quayle, polishes the great lens every evening before the ships pass.";
    await page.locator("#knowledge-file").setInputFiles({ name: "lighthouse.md", mimeType: "text/markdown", buffer: Buffer.from(text) });
    await page.locator('#documents tbody tr[data-status="ready"]').filter({ hasText: "lighthouse" }).waitFor({ timeout: 60_000 });
    await page.locator("#knowledge-query").fill("Marisol Quayle lighthouse keeper");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    for (const mode of ["dense", "bm25", "hybrid"]) {
      await expect.poll(() => page.locator(`#search-results [data-mode="${mode}"] li`).first().textContent()).toContain("#1");
      expect(await page.locator(`#search-results [data-mode="${mode}"]`).textContent()).toContain("Marisol Quayle");
    }
    await screenshot(page, "knowledge");
  });

  it("uploads an adapter archive that appears in the model pickers", async () => {
    const { files } = randomPeftAdapter(STORIES, { rank: 8, amplitude: 0.5, seed: 7 });
    const archive = zipOf({ "adapter_config.json": files.config, "adapter_model.safetensors": files.model });
    await openView(page, "adapters");
    await page.locator("#adapter-name").fill("pirate");
    await page.locator("#adapter-file").setInputFiles({ name: "pirate.zip", mimeType: "application/zip", buffer: Buffer.from(archive) });
    await page.getByRole("button", { name: "Upload" }).click();
    await page.locator('#adapters tbody tr[data-name="pirate"]').waitFor();
    await expect.poll(() => page.locator("#chat-model option").allTextContents()).toContain("pirate (adapter)");
    expect(await page.locator("#compare-model option").allTextContents()).toContain("pirate (adapter)");
    await screenshot(page, "adapters");
  });

  it("uploads an adapter from a PEFT folder, and says what a folder without its files lacks", async () => {
    const { files } = randomPeftAdapter(STORIES, { rank: 4, amplitude: 0.5, seed: 8 });
    const folder = await mkdtemp(join(tmpdir(), "peft-folder-"));
    await page.locator("#adapter-name").fill("from-folder");
    await page.locator("#adapter-folder").setInputFiles(folder); // empty: nothing to send
    await page.getByRole("button", { name: "Upload" }).click();
    await expect.poll(() => page.locator("#adapter-error").textContent()).toContain("adapter_config.json and adapter_model.safetensors");
    await writeFile(join(folder, "adapter_config.json"), files.config);
    await writeFile(join(folder, "adapter_model.safetensors"), files.model);
    await writeFile(join(folder, "README.md"), "# not part of the upload\n");
    await page.locator("#adapter-folder").setInputFiles(folder);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.locator('#adapters tbody tr[data-name="from-folder"]').waitFor();
    const listed = (await (await p.call("GET", "/v1/adapters", { key })).json()).data.find((a: { name: string }) => a.name === "from-folder");
    expect(listed).toMatchObject({ rank: 4 });
    expect(await page.locator("#adapter-error").textContent()).toBe("");
    await rm(folder, { recursive: true, force: true });
  });

  it("shows a fine-tuning job's loss chart gaining points while it runs, then chats with its model", async () => {
    trainer = await startTrainer(p.config, fakeTrain({ stepMs: 800, steps: 6 }), pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 100 });
    await page.reload();
    await openView(page, "fine-tuning");
    const jsonl = ['{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}', "not json", '{"messages":[]}'].join("\n");
    await page.locator("#ft-file").setInputFiles({ name: "bad.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(jsonl) });
    await page.locator("#ft-upload").getByRole("button", { name: "Upload" }).click();
    await expect.poll(() => page.locator("#ft-file-errors li").allTextContents()).toEqual(expect.arrayContaining([expect.stringMatching(/^line 2: /), expect.stringMatching(/^line 3: /)]));

    const good = Array.from({ length: 4 }, (_, i) => JSON.stringify({ messages: [{ role: "user", content: `q${i}` }, { role: "assistant", content: `a${i}` }] })).join("\n");
    await page.locator("#ft-file").setInputFiles({ name: "good.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(good) });
    await page.locator("#ft-upload").getByRole("button", { name: "Upload" }).click();
    await expect.poll(() => page.locator("#ft-training-file option").allTextContents()).toEqual([expect.stringContaining("good.jsonl")]);
    await page.locator("#ft-validation-file").selectOption({ label: "good.jsonl (4 examples)" });
    await page.locator("#ft-suffix").fill("tiny");
    await page.getByRole("button", { name: "Start job" }).click();

    const chart = page.locator("#ft-chart");
    const seen = new Set<number>();
    await expect.poll(async () => {
      seen.add(Number((await chart.getAttribute("data-points")) ?? 0));
      return Math.max(...seen);
    }, { timeout: 60_000, interval: 100 }).toBe(6);
    expect([...seen].filter((n) => n > 0 && n < 6).length).toBeGreaterThan(0); // points arrived while it ran
    expect(await chart.locator("canvas").count()).toBe(1);
    expect(await chart.getAttribute("data-validation-points")).toBe("6"); // the validation file's loss, every step
    await expect.poll(() => page.locator("#ft-points").textContent(), { timeout: 30_000 }).toContain("succeeded");
    await screenshot(page, "fine-tuning");

    await page.getByRole("button", { name: "Chat with it" }).first().click();
    // The switch is asynchronous (the model list is refreshed first): wait for it.
    await page.locator("#view-chat").waitFor({ state: "visible" });
    await expect.poll(() => page.locator("#chat-model").inputValue()).toMatch(/^tiny/);
  });

  it("shows tenants and keys to an admin key", async () => {
    const admin = await pg.context.newPage();
    await signIn(admin, ADMIN_KEY);
    await admin.locator("#tenants tbody tr").filter({ hasText: "playground" }).waitFor();
    expect(await admin.locator("#tabs button:visible").allTextContents()).toEqual(["Admin"]);
    await admin.getByRole("button", { name: "Keys of playground" }).click();
    await admin.locator("#key-list li").first().waitFor();
    await screenshot(admin, "admin");

    // Keys of one tenant, then of another before the first answer came: the slow answer must not fill the second's list.
    const other = await createTenantWithKey(p, "other-keys");
    await admin.reload();
    const tenants = (await (await p.call("GET", "/v1/admin/tenants", { key: ADMIN_KEY })).json()).data as { id: string; name: string }[];
    const playgroundId = tenants.find((t) => t.name === "playground")!.id;
    const prefixes = async (tenantId: string) =>
      ((await (await p.call("GET", `/v1/admin/tenants/${tenantId}/keys`, { key: ADMIN_KEY })).json()).data as { prefix: string }[]).map((k) => k.prefix);
    const playgroundKeys = await holdRequests(admin, `**/v1/admin/tenants/${playgroundId}/keys`);
    await admin.getByRole("button", { name: "Keys of playground" }).click();
    await admin.getByRole("button", { name: "Keys of other-keys" }).click();
    const [otherPrefix] = await prefixes(other.tenantId);
    await admin.locator("#key-list li").filter({ hasText: otherPrefix! }).waitFor();
    playgroundKeys.release();
    await playgroundKeys.answered;
    await admin.evaluate("new Promise((resolve) => setTimeout(resolve, 200))"); // the stale answer has had its turn
    expect(await admin.locator("#tenant-keys-name").textContent()).toBe("other-keys");
    const shown = await admin.locator("#key-list li").allTextContents();
    expect(shown).toHaveLength(1);
    expect(shown[0]).toContain(otherPrefix);
    for (const prefix of await prefixes(playgroundId)) expect(shown.join("\n")).not.toContain(prefix);
    await admin.close();
  });

  it("fits a phone's width without horizontal scrolling", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ["Chat", "Compare", "Knowledge", "Adapters", "Fine-tuning"]) {
      await page.getByRole("button", { name: view, exact: true }).click();
      const overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth");
      expect(overflow, view).toBe(0);
    }
    await screenshot(page, "phone-compare");
  });

  it("labels every control", async () => {
    const unlabelled = await page.evaluate(`[...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.labels?.length === 0 && !el.getAttribute("aria-label"))
      .map((el) => el.id || el.outerHTML)`);
    expect(unlabelled).toEqual([]);
  });

  it("never put the key in a URL, and the page raised no error", () => {
    expect(pg.requested.length).toBeGreaterThan(20);
    for (const url of pg.requested) {
      expect(url).not.toContain(key);
      expect(url).not.toContain(ADMIN_KEY);
    }
    expect(pg.pageErrors).toEqual([]);
    // The failed requests the page made on purpose: the wrong key (401) and the invalid training file (400).
    const expected = (e: string) => (e.includes("status of 401") && e.endsWith("/v1/tenant")) || (e.includes("status of 400") && e.endsWith("/v1/files"));
    expect(pg.consoleErrors.filter((e) => !expected(e))).toEqual([]);
  });
});
