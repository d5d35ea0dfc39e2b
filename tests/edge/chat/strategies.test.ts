import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareCompletion, retrieveSources, type CompletionDeps } from "../../../edge/chat/completion.ts";
import { DEFAULT_RETRIEVAL } from "../../../edge/chat/retrieval-options.ts";
import type { GenerationBody } from "../../../edge/chat/schema.ts";
import { ingestPolicy } from "../../../edge/tenant-settings.ts";
import { createEngine, type Engine } from "../../../services/inference/engine.ts";
import { openKnowledgeBase, type KnowledgeBase } from "../../../services/retrieval/index.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { TenantStore } from "../../../services/store/tenants.ts";
import { findSharedModel } from "../../helpers/adapters.ts";

/** The prompts each strategy renders, on the real model, tokenizer and knowledge base. */
let dir: string;
let database: OpenDatabase;
let engine: Engine;
let kb: KnowledgeBase;
let deps: CompletionDeps;
const tenant = { id: "", settings: {} as Record<string, unknown> };

/** What the edge passes for this tenant's uploads. */
const policy = () => ingestPolicy({ settings: tenant.settings, limits: {} });

const ask = (content: string, extra: Partial<GenerationBody> = {}): GenerationBody => ({ messages: [{ role: "user", content }], ...extra });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchyard-strategies-"));
  database = openDatabase(join(dir, "db.sqlite"));
  tenant.id = (await new TenantStore(database.db).create("strategies")).id;
  engine = await createEngine({ modelDir: findSharedModel("stories260k"), cacheDir: join(dir, "compiled") });
  kb = await openKnowledgeBase(database, dir);
  for (const [title, text] of [
    ["Dragons", "Zorblat the purple dragon lives in the mountain town of Quexville and guards its library."],
    ["Baking", "To bake sourdough bread, feed the starter the night before and bake at a high temperature."],
    ["Sailing", "A sloop has a single mast; tacking turns the bow through the wind."],
  ]) {
    await kb.upload(tenant.id, { bytes: new TextEncoder().encode(text), format: "text", title }, policy());
  }
  await kb.idle();
  deps = { inference: engine, retrieval: kb };
});
afterAll(async () => {
  await engine.close();
  await kb.close();
  database.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("strategies", () => {
  it("rag puts the retrieved chunks into the prompt, best first, and reports them as sources", async () => {
    const rag = await prepareCompletion(deps, tenant, ask("Where does the purple dragon Zorblat live?"), { strategy: "rag", base: "stories260k" });
    expect(rag.sources[0].title).toBe("Dragons");
    expect(rag.prompt).toContain("[1] Dragons\nZorblat the purple dragon lives in the mountain town of Quexville");
    expect(rag.promptTokens).toEqual(engine.tokenize(rag.prompt, { addSpecialTokens: true })); // the fallback template writes no BOS itself
    expect(rag.promptTokens[0]).toBe(1);
    expect(rag.promptTokens.filter((t) => t === 1)).toHaveLength(1);

    const plain = await prepareCompletion(deps, tenant, ask("Where does the purple dragon Zorblat live?"), { strategy: "prompt", base: "stories260k" });
    expect(plain.sources).toEqual([]);
    expect(plain.prompt).not.toContain("Quexville");
  });

  it("prompt applies the tenant's system prompt and few-shot examples; rag keeps the system prompt only", async () => {
    const settings = { systemPrompt: "You are a friendly storyteller.", fewShot: [{ user: "Tell me about a cat.", assistant: "The cat purred softly." }] };
    const withTemplate = { ...tenant, settings };
    const prompt = await prepareCompletion(deps, withTemplate, ask("Tell me about a dog."), { strategy: "prompt", base: "stories260k" });
    const order = ["You are a friendly storyteller.", "Tell me about a cat.", "The cat purred softly.", "Tell me about a dog."].map((s) => prompt.prompt.indexOf(s));
    expect(order).not.toContain(-1);
    expect([...order].sort((a, b) => a - b)).toEqual(order);

    const rag = await prepareCompletion(deps, withTemplate, ask("Tell me about a dog."), { strategy: "rag", base: "stories260k" });
    expect(rag.prompt).toContain("You are a friendly storyteller.");
    expect(rag.prompt).not.toContain("The cat purred softly.");
  });

  it("rag+adapter retrieves and keeps the adapter; adapter alone does not retrieve", async () => {
    const both = await prepareCompletion(deps, tenant, ask("How do I bake sourdough bread?"), { strategy: "rag+adapter", base: "stories260k", adapterId: "ad_x" });
    expect(both.plan.adapterId).toBe("ad_x");
    expect(both.sources[0].title).toBe("Baking");
    expect(both.prompt).toContain("feed the starter the night before");
    const adapterOnly = await prepareCompletion(deps, tenant, ask("How do I bake sourdough bread?"), { strategy: "adapter", base: "stories260k", adapterId: "ad_x" });
    expect(adapterOnly.sources).toEqual([]);
  });

  it("drops the lowest-ranked chunks rather than overflow the context window, and says so", async () => {
    const long = "The dragon of Quexville hoards old books. ".repeat(40);
    await kb.upload(tenant.id, { bytes: new TextEncoder().encode(long), format: "text", title: "Hoard" }, policy());
    await kb.idle();
    const { contextLength } = engine.info;
    const question = "What does the dragon of Quexville hoard?";
    const MAX_TOKENS = 150; // room for the best chunk (about 250 tokens), not for the next
    const prepared = await prepareCompletion(deps, tenant, ask(question, { max_tokens: MAX_TOKENS, retrieval: { k: 8, mode: "hybrid", max_chunks_per_document: 2 } }), {
      strategy: "rag",
      base: "stories260k",
    });
    // The ranking retrieval gives, independently of the prompt builder: the kept chunks are its head.
    const ranked = await kb.search(tenant.id, { query: question, k: 8, mode: "hybrid", maxChunksPerDocument: 2 });
    const kept = prepared.sources.length;
    expect(kept).toBeGreaterThan(0);
    expect(prepared.sourcesDropped).toBeGreaterThan(0);
    expect(kept + prepared.sourcesDropped).toBe(ranked.length);
    expect(prepared.sources.map((h) => h.chunkId)).toEqual(ranked.slice(0, kept).map((h) => h.chunkId));
    expect(prepared.promptTokens.length + MAX_TOKENS).toBeLessThanOrEqual(contextLength);
    // ... and no more was dropped than needed: the next-ranked chunk would not have fit.
    const body = ask(question, { max_tokens: MAX_TOKENS, retrieval: { k: kept + 1, mode: "hybrid", max_chunks_per_document: 2 } });
    const withNext = await prepareCompletion(deps, tenant, body, { strategy: "rag", base: "stories260k" });
    expect(withNext.sources.map((h) => h.chunkId)).toEqual(ranked.slice(0, kept).map((h) => h.chunkId));
    expect(withNext.sourcesDropped).toBe(1);
  });

  it("puts at most max_chunks_per_document chunks of one document in the prompt while others are relevant", async () => {
    const long = Array.from({ length: 12 }, (_, i) => `Glimmerstone lore, part ${i}: the glimmerstone glows blue under the old glimmerstone bridge.`).join("\n\n");
    await kb.upload(tenant.id, { bytes: new TextEncoder().encode(long.repeat(4)), format: "text", title: "Glimmerstone saga" }, policy());
    await kb.upload(tenant.id, { bytes: new TextEncoder().encode("A glimmerstone is sold at the market of Quexville."), format: "text", title: "Market" }, policy());
    await kb.upload(tenant.id, { bytes: new TextEncoder().encode("Miners dig for glimmerstone deep in the northern hills."), format: "text", title: "Mine" }, policy());
    await kb.idle();
    const question = "What do we know about the glimmerstone?";
    const uncapped = await kb.search(tenant.id, { query: question, k: 4, mode: "bm25" });
    expect(uncapped.filter((h) => h.title === "Glimmerstone saga").length).toBeGreaterThan(2);
    // The sources the prompt builder is given (the 512-token window of the test model holds fewer).
    const { sources } = await retrieveSources(deps, tenant.id, { strategy: "rag", base: "stories260k" }, question, { ...DEFAULT_RETRIEVAL, mode: "bm25" });
    expect(DEFAULT_RETRIEVAL.max_chunks_per_document).toBe(2);
    expect(sources).toHaveLength(4);
    expect(sources.filter((h) => h.title === "Glimmerstone saga")).toHaveLength(2);
    expect(sources.map((h) => h.title)).toEqual(expect.arrayContaining(["Market", "Mine"]));
  });

  it("refuses a prompt that cannot fit even without context, with the token counts", async () => {
    const huge = "once upon a time ".repeat(200);
    await expect(prepareCompletion(deps, tenant, ask(huge, { max_tokens: 10 }), { strategy: "prompt", base: "stories260k" })).rejects.toThrow(
      /maximum context length is 512 tokens.*\(\d+ in the messages, 10 in the completion\)/,
    );
  });
});
