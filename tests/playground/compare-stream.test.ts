/**
 * The playground's Compare view in real headless Chromium against the real server (stories260k, SQLite,
 * hnswlib): four strategies streamed into four columns, each gaining text while the stream runs and ending
 * with the non-streaming answer; Stop cancelling every strategy on the server; blind mode shuffled before
 * any token and hidden until rated, its choice stored as downloadable preference pairs. Screenshots go
 * to artefacts/playground/.
 */
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addDocument, uploadRandomAdapter } from "../edge/chat/fixtures.ts";
import { ADMIN_KEY } from "../helpers/platform.ts";
import { openView, screenshot } from "./browser.ts";
import { startPlayground, type Playground } from "./harness.ts";

let pg: Playground;
const STRATEGIES = ["prompt", "rag", "adapter", "rag+adapter"];
const question = "Who keeps the lighthouse?";
const reference = "Marisol Quayle keeps the lighthouse.";

/** What the column container looked like at each DOM change, recorded in the page. */
interface Snapshot {
  state: string;
  arms: string[];
  heads: string[];
  lengths: number[];
  states: string[];
}

beforeAll(async () => {
  pg = await startPlayground("compare");
  await addDocument(pg.p, pg.key, "The lighthouse", "The keeper of the old lighthouse, Marisol Quayle, polishes the great lens every evening before the ships pass.");
  await uploadRandomAdapter(pg.p, pg.key, "pirate", 7);
  await pg.signIn(pg.page, pg.key);
  await openView(pg.page, "compare");
  await pg.page.locator("#compare-model option", { hasText: "pirate (adapter)" }).waitFor({ state: "attached" });
}, 120_000);
afterAll(async () => {
  await pg?.close();
});

/** Starts recording a snapshot of the columns at every DOM change (MutationObserver batches). */
const observe = () =>
  pg.page.evaluate(`(() => {
    window.__observer?.disconnect();
    window.__seen = [];
    const box = document.querySelector("#compare-columns");
    window.__observer = new MutationObserver(() => {
      const cols = [...box.querySelectorAll("article")];
      window.__seen.push({
        state: box.dataset.state,
        arms: cols.map((c) => c.dataset.arm),
        heads: cols.map((c) => c.querySelector("h3").textContent),
        lengths: cols.map((c) => c.querySelector(".answer")?.textContent.length ?? -1),
        states: cols.map((c) => c.dataset.state),
      });
    });
    window.__observer.observe(box, { subtree: true, childList: true, characterData: true, attributes: true });
  })()`);
const seen = () => pg.page.evaluate("window.__seen") as Promise<Snapshot[]>;

async function runCompare(options: { maxTokens: number }) {
  const { page } = pg;
  await page.locator("#compare-model").selectOption("pirate");
  await page.locator("#compare-max-tokens").fill(String(options.maxTokens));
  await page.locator("#compare-temperature").fill("0");
  await page.locator("#compare-prompt").fill(question);
  await page.locator("#compare-reference").fill(reference);
  await observe();
  await page.getByRole("button", { name: "Run" }).click();
}

/** The same request without streaming, through the API: each strategy's whole answer. */
async function nonStreaming(maxTokens: number): Promise<Map<string, string>> {
  const json = { model: "pirate", messages: [{ role: "user", content: question }], max_tokens: maxTokens, temperature: 0, reference };
  const body = await (await pg.p.call("POST", "/v1/compare", { key: pg.key, json })).json();
  return new Map(body.results.map((r: { strategy: string; content: string }) => [r.strategy, r.content]));
}

describe("compare in the playground, streamed", () => {
  it("fills four columns as the tokens arrive, each ending with the non-streaming answer and its facts", async () => {
    const { page } = pg;
    await runCompare({ maxTokens: 48 });
    const box = page.locator("#compare-columns");
    await expect.poll(() => box.getAttribute("data-state"), { timeout: 60_000 }).toBe("done");
    const columns = box.locator("article");
    expect(await columns.locator("h3").allTextContents()).toEqual(STRATEGIES);
    await screenshot(page, "compare");

    const expected = await nonStreaming(48);
    const snapshots = await seen();
    for (let i = 0; i < 4; i++) {
      const column = columns.nth(i);
      const final = (await column.locator(".answer").textContent())!;
      expect(final).toBe(expected.get(STRATEGIES[i]!));
      // Seen while that column was still streaming: part of its text, at more than one length.
      const partial = new Set(snapshots.filter((s) => s.states[i] === "streaming").map((s) => s.lengths[i]!).filter((n) => n > 0));
      expect([...partial].some((n) => n < final.length), STRATEGIES[i]).toBe(true);
      expect(partial.size, STRATEGIES[i]).toBeGreaterThan(1);

      const text = await column.textContent();
      expect(await column.getAttribute("data-state")).toBe("done");
      expect(text).toMatch(/Time to first token\d+(\.\d)? ms/);
      expect(text).toMatch(/Tokens\/s\d+(\.\d)?/);
      expect(text).toMatch(/Prompt tokens\d+/);
      expect(text).toContain("Completion tokens48");
      expect(text).toContain("rougeL"); // scored against the reference
    }
    expect(await columns.nth(1).locator("ol.sources li").first().textContent()).toContain("#1 The lighthouse");
    expect(await columns.nth(0).locator("ol.sources").count()).toBe(0);
    expect(expected.get("adapter")).not.toBe(expected.get("prompt")); // the adapter changes the answer
    expect(await page.locator("#compare-diff del, #compare-diff ins").count()).toBeGreaterThan(0);
  });

  it("Stop cancels every strategy on the server", async () => {
    const { page } = pg;
    const start = await pg.gauge("switchyard_engine_decode_steps");
    await runCompare({ maxTokens: 400 }); // greedy, this prompt writes no end of text: 400 steps to the end
    const columns = page.locator("#compare-columns article");
    await columns.nth(3).locator(".answer").filter({ hasText: /\S/ }).waitFor(); // tokens are arriving
    // Run moved the focus to Stop: the keyboard stops it (quicker than a click's actionability checks).
    expect(await page.evaluate("document.activeElement.id")).toBe("compare-stop");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("#compare-columns").getAttribute("data-state")).toBe("stopped");
    await expect.poll(async () => (await pg.gauge("switchyard_engine_running_sequences")) + (await pg.gauge("switchyard_engine_waiting_requests"))).toBe(0);
    const steps = (await pg.gauge("switchyard_engine_decode_steps")) - start;
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThan(399);
    expect(await columns.evaluateAll((els) => els.map((e) => e.getAttribute("data-state")))).toEqual(["stopped", "stopped", "stopped", "stopped"]);
    expect(await page.locator("#compare-status").textContent()).toBe("Stopped.");
    await screenshot(page, "compare-stopped");
  });

  it("in blind mode shuffles before any token, hides the arms until rated and stores the choice as downloadable preference pairs", async () => {
    const { page, p, key } = pg;
    await page.locator("#compare-blind").check();
    await runCompare({ maxTokens: 24 });
    const box = page.locator("#compare-columns");
    await expect.poll(() => box.getAttribute("data-state"), { timeout: 60_000 }).toBe("done");
    const columns = box.locator("article");
    const answers = ["Answer 1", "Answer 2", "Answer 3", "Answer 4"];
    expect(await columns.locator("h3").allTextContents()).toEqual(answers);
    await screenshot(page, "compare-blind");
    const arms = await columns.evaluateAll((els) => els.map((e) => e.getAttribute("data-arm")!));
    expect([...arms].sort()).toEqual([...STRATEGIES].sort());
    // The order was fixed before the first token and every column stayed unnamed while it streamed.
    const streaming = (await seen()).filter((s) => s.arms.length === 4);
    expect(streaming.some((s) => s.lengths.every((n) => n === 0))).toBe(true);
    for (const s of streaming) {
      expect(s.arms).toEqual(arms);
      expect(s.heads).toEqual(answers);
    }

    const texts = await columns.locator(".answer").allTextContents();
    await page.getByRole("button", { name: "Answer 1 is best" }).click();
    await expect.poll(() => columns.locator("h3").allTextContents()).toEqual(arms); // revealed
    const expectedPairs = texts.slice(1).filter((a) => a !== texts[0]).length;
    expect(expectedPairs).toBeGreaterThan(0);

    const download = await (await p.call("GET", "/v1/preferences?format=jsonl", { key })).text();
    const lines = download.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(expectedPairs);
    for (const line of lines) {
      expect(line.input.messages).toEqual([{ role: "user", content: question }]);
      expect(line.preferred_output).toEqual([{ role: "assistant", content: texts[0] }]);
      expect(texts.slice(1)).toContain(line.non_preferred_output[0].content);
    }
    const winner = page.locator("#winrates tbody tr").filter({ has: page.getByRole("rowheader", { name: arms[0]!, exact: true }) });
    await expect.poll(() => winner.locator("td").allTextContents()).toEqual([String(expectedPairs), "0", "100%"]);

    const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: /Download preference pairs/ }).click()]);
    expect((await readFile((await file.path())!, "utf8")).trim().split("\n")).toHaveLength(expectedPairs);
  });

  it("fits a phone's width with its columns filled", async () => {
    await pg.page.setViewportSize({ width: 390, height: 844 });
    expect(await pg.page.locator("#compare-columns article").count()).toBe(4);
    expect(await pg.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")).toBe(0);
    await screenshot(pg.page, "phone-compare-columns");
  });

  it("never put the key in a URL, and the page raised no error", () => {
    expect(pg.requested.length).toBeGreaterThan(5);
    for (const url of pg.requested) {
      expect(url).not.toContain(pg.key);
      expect(url).not.toContain(ADMIN_KEY);
    }
    expect(pg.pageErrors).toEqual([]);
    expect(pg.consoleErrors).toEqual([]);
  });
});
