import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateEvent, PromptTokenLogprob } from "../../../ports/index.ts";
import { createEngine, type Engine } from "../../../services/inference/engine.ts";
import { InvalidGenerateRequestError } from "../../../services/inference/errors.ts";
import { logSumExp } from "../../../services/inference/sampler.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { openWeights } from "../../../services/model/safetensors.ts";
import { params } from "../../helpers/generate.ts";
import { findModel } from "../../helpers/model-path.ts";

/** The engine's prompt logprobs (echo with logprobs), against the plain-TypeScript reference forward. */
let engine: Engine;
let cacheDir: string;
let reference: ReferenceDecoder;

beforeAll(async () => {
  const dir = findModel("stories260k");
  cacheDir = await mkdtemp(join(tmpdir(), "sy-prompt-logprobs-"));
  // A small prefill chunk, so prompts span several chunks.
  engine = await createEngine({ modelDir: dir, cacheDir, prefillChunk: 7 });
  const store = await openWeights(dir);
  const weights = new Map(store.names().map((n) => [n, store.getF32(n)]));
  store.close();
  reference = new ReferenceDecoder(engine.config, (name) => weights.get(name)!);
});
afterAll(async () => {
  await engine.close();
  await rm(cacheDir, { recursive: true, force: true });
});

async function events(promptTokens: number[], promptLogprobs?: number): Promise<GenerateEvent[]> {
  const out: GenerateEvent[] = [];
  for await (const e of engine.generate({ promptTokens, params: params({ maxTokens: 3, logprobs: 0 }), promptLogprobs })) out.push(e);
  return out;
}

describe("prompt logprobs", () => {
  it("come first, one per prompt token, the first null, as the reference model scores them", async () => {
    const prompt = engine.tokenize("The little dog ran to the big tree and saw a bird.");
    expect(prompt.length).toBeGreaterThan(14); // three chunks of 7
    const [first, ...rest] = await events(prompt, 2);
    expect(first.type).toBe("prompt");
    expect(rest.map((e) => e.type)).toEqual(["text", "text", "text", "done"]);
    const scored = (first as { logprobs: PromptTokenLogprob[] }).logprobs;
    expect(scored).toHaveLength(prompt.length);
    expect(scored[0]).toMatchObject({ logprob: null, top: [] });

    const logits = reference.forward(reference.newCache(), prompt);
    for (let i = 1; i < prompt.length; i++) {
      const row = logits[i - 1]!;
      const norm = logSumExp(row);
      expect(scored[i].token).toBe(new TextDecoder().decode(engine.tokenizer.tokenBytes(prompt[i])));
      expect(scored[i].logprob).toBeCloseTo(row[prompt[i]] - norm, 3);
      expect(scored[i].top).toHaveLength(2);
      const best = row.indexOf(Math.max(...row));
      expect(scored[i].top[0].logprob).toBeCloseTo(row[best] - norm, 3);
    }
  });

  it("are not computed unless asked for, and a bad count is refused", async () => {
    expect((await events(engine.tokenize("Once upon a time"))).some((e) => e.type === "prompt")).toBe(false);
    expect(() => engine.generate({ promptTokens: [1, 2], params: params(), promptLogprobs: -1 })).toThrow(InvalidGenerateRequestError);
  });
});
