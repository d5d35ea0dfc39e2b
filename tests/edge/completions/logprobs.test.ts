import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type TextTokenizer } from "../../../services/model/tokenizer.ts";
import { findModel } from "../../helpers/model-path.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { openAiSchema, specErrors } from "../../helpers/openai-spec.ts";

/** Legacy logprobs on /v1/completions, and echo's prompt logprobs, which the engine computes in prefill. */
let p: TestPlatform;
let client: OpenAI;
let tokenizer: TextTokenizer;
const BASE = "stories260k";
const STORY = "Once upon a time";

beforeAll(async () => {
  // Parsing the spec blocks the event loop for seconds: done before any connection sits idle in the pool.
  openAiSchema("CreateCompletionResponse");
  p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "logprobs");
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0 });
  tokenizer = await loadTokenizer(findModel(BASE));
});
afterAll(async () => {
  await p.stop();
});

const complete = (body: Partial<OpenAI.CompletionCreateParamsNonStreaming>) =>
  client.completions.create({ model: BASE, prompt: STORY, temperature: 0, ...body } as OpenAI.CompletionCreateParamsNonStreaming);

describe("legacy logprobs", () => {
  it("gives tokens, their logprobs, the top alternatives with the chosen token, and text offsets", async () => {
    const res = await complete({ max_tokens: 6, logprobs: 3 });
    expect(specErrors("CreateCompletionResponse", res)).toEqual([]);
    const { tokens, token_logprobs, top_logprobs, text_offset } = res.choices[0].logprobs!;
    expect(tokens).toHaveLength(6);
    expect(tokens!.join("")).toBe(res.choices[0].text);
    expect(text_offset).toEqual(tokens!.map((_, i) => tokens!.slice(0, i).join("").length));
    tokens!.forEach((token, i) => {
      expect(token_logprobs![i]).toBeLessThanOrEqual(0);
      const top = top_logprobs![i];
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(3);
      expect(top[token]).toBe(token_logprobs![i]);
      expect(Math.max(...Object.values(top))).toBe(token_logprobs![i]); // greedy: the chosen one is the most likely
    });

    const chosenOnly = await complete({ max_tokens: 6, logprobs: 0 });
    expect(chosenOnly.choices[0].logprobs!.top_logprobs).toEqual(tokens!.map((t, i) => ({ [t]: token_logprobs![i] })));
  });

  it("streams each token's logprobs with offsets into the whole text", async () => {
    const whole = await complete({ max_tokens: 8, logprobs: 2 });
    const stream = await client.completions.create({ model: BASE, prompt: STORY, temperature: 0, max_tokens: 8, logprobs: 2, stream: true });
    const tokens: string[] = [];
    const offsets: number[] = [];
    const logprobs: (number | null)[] = [];
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        if (!choice.logprobs) continue;
        tokens.push(...choice.logprobs.tokens!);
        offsets.push(...choice.logprobs.text_offset!);
        logprobs.push(...choice.logprobs.token_logprobs!);
      }
    }
    expect(tokens).toEqual(whole.choices[0].logprobs!.tokens);
    expect(offsets).toEqual(whole.choices[0].logprobs!.text_offset);
    expect(logprobs).toEqual(whole.choices[0].logprobs!.token_logprobs);
  });
});

describe("echo with logprobs", () => {
  it("scores the prompt's tokens too, the first with null, as vLLM does", async () => {
    const res = await complete({ max_tokens: 3, logprobs: 2, echo: true });
    const promptTokens = tokenizer.encode(STORY, { addSpecialTokens: true });
    const lp = res.choices[0].logprobs!;
    expect(res.choices[0].text.startsWith(STORY)).toBe(true);
    expect(lp.tokens).toHaveLength(promptTokens.length + 3);
    expect(lp.tokens!.slice(0, promptTokens.length)).toEqual(promptTokens.map((t) => new TextDecoder().decode(tokenizer.tokenBytes(t))));
    expect(lp.token_logprobs![0]).toBeNull();
    expect(lp.top_logprobs![0]).toBeNull();
    for (let i = 1; i < lp.tokens!.length; i++) {
      expect(lp.token_logprobs![i]).toBeLessThanOrEqual(0);
      expect(lp.top_logprobs![i][lp.tokens![i]]).toBe(lp.token_logprobs![i]);
    }
    // Offsets point into the text: the BOS and the tokenizer's leading space take none of it.
    const text = res.choices[0].text;
    const offsets = lp.text_offset!;
    expect(offsets.slice(0, 2)).toEqual([0, 0]);
    for (let i = 1; i < lp.tokens!.length - 1; i++) expect(text.slice(offsets[i], offsets[i + 1]).trim()).toBe(lp.tokens![i].trim());
    expect(offsets[promptTokens.length]).toBe(STORY.length); // the completion's continue after the echoed prompt
    // OpenAI's schema has no null token logprob; that is the only way this differs from it.
    expect(specErrors("CreateCompletionResponse", res).every((e) => e.startsWith("/choices/0/logprobs"))).toBe(true);
  });

  it("gives a prompt token the logprob the model gave it when it generated it", async () => {
    const generated = await complete({ max_tokens: 6, logprobs: 1 });
    const continued = STORY + generated.choices[0].text;
    const scored = await complete({ prompt: continued, max_tokens: 1, logprobs: 1, echo: true });
    const lp = scored.choices[0].logprobs!;
    const promptCount = tokenizer.encode(continued, { addSpecialTokens: true }).length;
    const tail = lp.token_logprobs!.slice(promptCount - 6, promptCount);
    expect(lp.tokens!.slice(promptCount - 6, promptCount)).toEqual(generated.choices[0].logprobs!.tokens);
    tail.forEach((logprob, i) => expect(logprob).toBeCloseTo(generated.choices[0].logprobs!.token_logprobs![i]!, 4));
  });

  it("scores prompts longer than one prefill chunk, the same token for token as their prefix", async () => {
    const long = tokenizer.encode("The little dog ran to the park. He saw a big red ball and he was very happy. ".repeat(6), { addSpecialTokens: true });
    expect(long.length).toBeGreaterThan(128); // three prefill chunks of 64
    const prefix = long.slice(0, 70);
    const alone = await complete({ prompt: prefix, max_tokens: 8 });
    // Prefilled together: rows that want no prompt logprobs still get their own last logits.
    const [whole, part, beside] = await Promise.all([
      complete({ prompt: long, max_tokens: 1, logprobs: 0, echo: true }),
      complete({ prompt: prefix, max_tokens: 1, logprobs: 0, echo: true }),
      complete({ prompt: prefix, max_tokens: 8 }),
    ]);
    expect(beside.choices[0].text).toBe(alone.choices[0].text);
    const all = whole.choices[0].logprobs!.token_logprobs!;
    expect(all).toHaveLength(long.length + 1);
    expect(all.slice(1).every((l) => typeof l === "number" && l <= 0)).toBe(true);
    part.choices[0].logprobs!.token_logprobs!.slice(1, 70).forEach((l, i) => expect(l).toBeCloseTo(all[i + 1]!, 4));

    const stream = await client.completions.create({ model: BASE, prompt: long, temperature: 0, max_tokens: 1, logprobs: 0, echo: true, stream: true });
    const streamed: (number | null)[] = [];
    for await (const chunk of stream) for (const choice of chunk.choices) streamed.push(...(choice.logprobs?.token_logprobs ?? []));
    expect(streamed).toEqual(all);
  });
});
