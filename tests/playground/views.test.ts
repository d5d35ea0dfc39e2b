/**
 * The playground's management and report views in real headless Chromium against the real server
 * (stories260k, SQLite, hnswlib): an adapter made the tenant default and another deleted, a document
 * deleted, an admin disabling a tenant and revoking a key (the page signed in with it is signed out
 * with the server's 401 reason), an evaluation run of a tiny test set over two arms on the real model
 * (progress, per-arm charts with intervals, comparisons, the per-item drill-down, the HTML report as a
 * download), and a fine-tuning job (the in-process trainer with the stand-in loop, stopping early; the
 * real base-vs-adapter report) whose chart marks the best checkpoint and the early stop. One server,
 * one browser; screenshots go to artefacts/playground/.
 */
import { readFile } from "node:fs/promises";
import { pino } from "pino";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTrainer, type TrainerProcess } from "../../hosts/node/trainer.ts";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { fakeTrain } from "../../trainer/jobs/fake-train.ts";
import { STORIES, zipOf } from "../helpers/adapters.ts";
import { ADMIN_KEY, createTenantWithKey, type TestPlatform } from "../helpers/platform.ts";
import { openView, overflow, screenshot, signIn } from "./browser.ts";
import { startPlayground, type Playground } from "./harness.ts";

let pg: Playground;
let p: TestPlatform;
let key: string;
let page: Page;
let trainer: TrainerProcess;

beforeAll(async () => {
  pg = await startPlayground("views");
  ({ p, key, page } = pg);
  trainer = await startTrainer(p.config, fakeTrain({ stepMs: 200, steps: 8, earlyStop: { bestStep: 3, atStep: 5 } }), pino({ level: "silent" }), { leaseMs: 30_000, heartbeatMs: 1000, pollMs: 100 });
  await pg.signIn(page, key);
}, 120_000);
afterAll(async () => {
  await trainer?.close();
  await pg?.close();
});

async function uploadAdapter(name: string, seed: number): Promise<void> {
  const { files } = randomPeftAdapter(STORIES, { rank: 4, amplitude: 0.5, seed });
  const form = new FormData();
  form.append("name", name);
  form.append("file", new Blob([zipOf({ "adapter_config.json": files.config, "adapter_model.safetensors": files.model })]), `${name}.zip`);
  expect((await p.call("POST", "/v1/adapters", { key, body: form })).status).toBe(201);
}

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n");

describe("the playground's views", () => {
  it("makes an adapter the tenant default and deletes another", async () => {
    await uploadAdapter("keeper", 1);
    await uploadAdapter("doomed", 2);
    await openView(page, "adapters");
    await page.getByRole("button", { name: "Make keeper@1 the default" }).click();
    await expect.poll(() => page.locator('#adapters tr[data-name="keeper"] th').textContent()).toBe("keeper (default)");
    const tenant = await (await p.call("GET", "/v1/tenant", { key })).json();
    const adapters = (await (await p.call("GET", "/v1/adapters", { key })).json()).data;
    expect(tenant.settings.defaultAdapter).toBe(adapters.find((a: { name: string }) => a.name === "keeper").id);

    await page.getByRole("button", { name: "Delete doomed@1" }).click();
    await page.locator('#adapters tr[data-name="doomed"]').waitFor({ state: "detached" });
    expect((await (await p.call("GET", "/v1/adapters", { key })).json()).data.map((a: { name: string }) => a.name)).toEqual(["keeper"]);
    await expect.poll(() => page.locator("#chat-model option").allTextContents()).not.toContain("doomed (adapter)");
    expect(await page.locator("#chat-model option").allTextContents()).toContain("keeper (adapter)");
    await screenshot(page, "views-adapters");
  });

  it("deletes a document", async () => {
    const form = new FormData();
    form.append("file", new Blob(["# Tides\n\nThe harbour master logs every tide at dawn."]), "tides.md");
    expect((await p.call("POST", "/v1/knowledge/documents", { key, body: form })).status).toBeLessThan(300);
    await openView(page, "knowledge");
    const row = page.locator('#documents tbody tr[data-status="ready"]').filter({ hasText: "Tides" });
    await row.waitFor({ timeout: 60_000 });
    await page.getByRole("button", { name: "Delete Tides" }).click();
    await row.waitFor({ state: "detached" });
    expect((await (await p.call("GET", "/v1/knowledge/documents", { key })).json()).data).toEqual([]);
  });

  it("runs a tiny test set over two arms and shows their charts, the comparisons and each item's answers", async () => {
    await openView(page, "evals");
    const bad = jsonl([{ messages: [{ role: "user", content: "hi" }], reference: "hello" }, { messages: [] }]) + "\nnot json";
    await page.locator("#eval-file").setInputFiles({ name: "bad.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(bad) });
    await page.getByRole("button", { name: "Upload test set" }).click();
    await expect.poll(() => page.locator("#eval-file-errors li").allTextContents()).toEqual([
      "The test set has 2 invalid lines:",
      expect.stringMatching(/^line 2: messages/),
      "line 3: not valid JSON",
    ]);

    const items = ["Once upon a time", "Lily had a cat", "The sun was hot"].map((q, i) => ({ messages: [{ role: "user", content: q }], reference: ["there was a girl", "the cat was big", "they went to the park"][i] }));
    await page.locator("#eval-dataset-name").fill("tiny set");
    await page.locator("#eval-file").setInputFiles({ name: "tiny.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(jsonl(items)) });
    await page.getByRole("button", { name: "Upload test set" }).click();
    await expect.poll(() => page.locator("#eval-dataset option").allTextContents()).toEqual(["tiny set"]);
    expect(await page.locator("#eval-file-errors li").count()).toBe(0);
    expect(await page.locator('#eval-arms input[name="arm"]:checked').evaluateAll((els) => els.map((e) => (e as unknown as { value: string }).value))).toEqual(["prompt", "rag"]);
    expect(await page.locator("#eval-adapter option").allTextContents()).toEqual(["tenant default", "keeper"]); // the adapters, not the base
    await page.locator("#eval-max-tokens").fill("8");
    await page.getByRole("button", { name: "Start run" }).click();

    await expect.poll(() => page.locator("#eval-status").textContent(), { timeout: 60_000 }).toBe("succeeded: 6/6 (100%)");
    expect(await page.locator("#eval-last-event").textContent()).toBe("Finished.");
    const runId = (await page.locator("#eval-run-id").textContent())!;
    expect(await page.locator(`#eval-runs tr[data-run="${runId}"]`).getAttribute("data-status")).toBe("succeeded");
    const report = await (await p.call("GET", `/v1/evals/runs/${runId}/report`, { key })).json();
    expect(report.arms.map((a: { label: string }) => a.label)).toEqual(["prompt", "rag"]);

    const charts = page.locator("#eval-charts figure");
    await expect.poll(() => charts.evaluateAll((els) => els.map((e) => e.getAttribute("data-arm")))).toEqual(["prompt", "rag"]);
    for (const [i, arm] of report.arms.entries()) {
      const metrics = Object.keys(arm.metrics);
      expect(metrics.length).toBeGreaterThan(0);
      expect(await charts.nth(i).locator("rect").evaluateAll((els) => els.map((e) => e.getAttribute("data-metric")))).toEqual(metrics);
      const label = (await charts.nth(i).locator("svg").getAttribute("aria-label"))!;
      const rougeL = arm.metrics.rougeL;
      expect(label).toContain(`rougeL ${rougeL.mean.toFixed(3)} (95% ${rougeL.low.toFixed(3)} to ${rougeL.high.toFixed(3)})`);
    }
    const findings = await page.locator("#eval-findings li.finding").allTextContents();
    expect(findings).toEqual(report.findings);
    expect(await page.locator("#eval-findings tbody tr").count()).toBe(report.comparisons.length);

    await page.locator("#eval-item").selectOption({ label: "Line 2: Lily had a cat" });
    const columns = page.locator("#eval-item-view article");
    await expect.poll(() => columns.locator("h5").allTextContents()).toEqual(["prompt", "rag"]);
    expect(await page.locator("#eval-item-view > dl").textContent()).toBe("PromptLily had a catReferencethe cat was big");
    for (const a of [0, 1]) expect(await columns.nth(a).locator(".answer").textContent()).toBe(report.items[1].results[a].answer);
    await screenshot(page, "evaluations");

    const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download the HTML report" }).click()]);
    expect(file.suggestedFilename()).toBe(`${runId}-report.html`);
    const html = await readFile((await file.path())!, "utf8");
    expect(html).toMatch(/^<!doctype html>/i);
    expect(html).toContain("tiny set");
  });

  it("marks the best checkpoint and the early stop on the loss chart, shows base vs adapter, and chats with the result", async () => {
    const upload = async (name: string, n: number) => {
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", new Blob([jsonl(Array.from({ length: n }, (_, i) => ({ messages: [{ role: "user", content: `q${i}` }, { role: "assistant", content: `a${i}` }] })))]), name);
      expect((await p.call("POST", "/v1/files", { key, body: form })).status).toBeLessThan(300);
    };
    await upload("train.jsonl", 4);
    await upload("valid.jsonl", 2);
    await openView(page, "fine-tuning");
    await page.locator("#ft-training-file").selectOption({ label: "train.jsonl (4 examples)" });
    await page.locator("#ft-validation-file").selectOption({ label: "valid.jsonl (2 examples)" });
    await page.locator("#ft-suffix").fill("early");
    await page.getByRole("button", { name: "Start job" }).click();

    const chart = page.locator("#ft-chart");
    await expect.poll(() => page.locator("#ft-points").textContent(), { timeout: 60_000 }).toBe("succeeded: 5 step(s) plotted; best checkpoint at step 3; stopped early after step 5");
    expect(await chart.getAttribute("data-best-step")).toBe("3");
    expect(await chart.getAttribute("data-early-stop-step")).toBe("5");
    expect(await chart.getAttribute("data-validation-points")).toBe("5");

    // The real report: the stand-in's evaluations (base 3.1, best step 3: 3/3 + 0.1), the served adapter's answers.
    const job = (await (await p.call("GET", "/v1/fine_tuning/jobs", { key })).json()).data[0];
    expect(job.switchyard.result).toMatchObject({ best_step: 3, validation_examples: 2, base: { loss: 3.1 }, adapter: { loss: 1.1 } });
    await page.locator("#ft-result").waitFor();
    expect(await page.locator("#ft-result-caption").textContent()).toContain("best step 3");
    expect(await page.locator('#ft-result tr[data-metric="loss"] td').allTextContents()).toEqual(["3.1000", "1.1000", "better"]);
    const rouge = job.switchyard.result;
    expect(await page.locator('#ft-result tr[data-metric="rouge_l"] td').allTextContents()).toEqual(expect.arrayContaining([rouge.base.rouge_l.toFixed(3), rouge.adapter.rouge_l.toFixed(3)]));
    await screenshot(page, "fine-tuning-result");

    // Opened again, the chart is filled from the metrics columns, not by replaying the events.
    await page.reload();
    await page.locator("#who").filter({ hasText: "Signed in" }).waitFor();
    const from = pg.requested.length;
    await openView(page, "fine-tuning");
    await page.getByRole("button", { name: `Watch the loss of ${job.id}` }).click();
    await expect.poll(() => chart.getAttribute("data-points")).toBe("5");
    const reads = pg.requested.slice(from).filter((u) => u.includes(job.id));
    expect(reads.some((u) => u.endsWith(`/jobs/${job.id}/metrics`))).toBe(true);
    expect(reads.filter((u) => u.includes("/events")).every((u) => u.endsWith("/events?limit=20"))).toBe(true);

    await page.getByRole("button", { name: "Chat with it" }).first().click();
    await page.locator("#view-chat").waitFor({ state: "visible" });
    expect(job.fine_tuned_model).toMatch(/^early@/);
    await expect.poll(() => page.locator("#chat-model").inputValue()).toBe(job.fine_tuned_model);
  });

  it("signs a tenant's page out when an admin disables the tenant, and again when the key is revoked", async () => {
    const other = await createTenantWithKey(p, "second");
    const tenantPage = await pg.context.newPage();
    tenantPage.on("pageerror", (e) => pg.pageErrors.push(e.message));
    await signIn(tenantPage, p.url, other.key);
    const admin = await pg.context.newPage();
    await signIn(admin, p.url, ADMIN_KEY);
    const row = admin.locator(`#tenants tr[data-tenant="${other.tenantId}"]`);
    await row.getByRole("button", { name: "Disable" }).click();
    await expect.poll(() => row.locator("td").nth(1).textContent()).toBe("disabled");

    await tenantPage.getByRole("button", { name: "Knowledge" }).click();
    await expect.poll(() => tenantPage.locator("#sign-in-error").textContent()).toBe("Signed out: This API key's tenant is disabled.");
    expect(await tenantPage.evaluate('sessionStorage.getItem("switchyard.apiKey")')).toBeNull();
    expect(await tenantPage.locator("#view-sign-in").isVisible()).toBe(true);

    await row.getByRole("button", { name: "Enable" }).click();
    await expect.poll(() => row.locator("td").nth(1).textContent()).toBe("active");
    await signIn(tenantPage, p.url, other.key);
    await admin.getByRole("button", { name: "Keys of second" }).click();
    await admin.locator("#key-list li").getByRole("button", { name: /^Revoke / }).click(); // the tenant's one key
    await expect.poll(() => admin.locator("#key-list li").first().textContent()).toContain("(revoked)");
    await screenshot(admin, "admin-revoked");

    await tenantPage.getByRole("button", { name: "Adapters" }).click();
    await expect.poll(() => tenantPage.locator("#sign-in-error").textContent()).toBe("Signed out: Incorrect or revoked API key provided.");
    expect((await p.call("GET", "/v1/tenant", { key: other.key })).status).toBe(401);
    await tenantPage.close();
    await admin.close();
  });

  it("fits a phone's width and labels every control in every tenant view", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const views = { Chat: "chat", Compare: "compare", Knowledge: "knowledge", Adapters: "adapters", "Fine-tuning": "fine-tuning", Evaluations: "evals" };
    for (const [view, id] of Object.entries(views)) {
      await page.getByRole("button", { name: view, exact: true }).click();
      await expect.poll(() => page.locator("body").getAttribute("data-view")).toBe(id);
      expect(await overflow(page), view).toBe(0);
    }
    await page.locator("#eval-runs button", { hasText: "Open" }).first().click();
    await page.locator("#eval-report").waitFor();
    expect(await overflow(page), "an evaluation report").toBe(0);
    await screenshot(page, "phone-evaluations");
    const unlabelled = await page.evaluate(`[...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.labels?.length === 0 && !el.getAttribute("aria-label"))
      .map((el) => el.id || el.outerHTML)`);
    expect(unlabelled).toEqual([]);
  });

  it("never put a key in a URL, and the pages raised no error", () => {
    expect(pg.requested.length).toBeGreaterThan(20);
    for (const url of pg.requested) {
      expect(url).not.toContain(key);
      expect(url).not.toContain(ADMIN_KEY);
    }
    expect(pg.pageErrors).toEqual([]);
  });
});
