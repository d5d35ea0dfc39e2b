import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type TextTokenizer } from "../../../services/model/tokenizer.ts";
import { findModel, REPO_ROOT } from "../../helpers/model-path.ts";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { openAiSchema, specErrors } from "../../helpers/openai-spec.ts";
import { addDocument, uploadRandomAdapter } from "../chat/fixtures.ts";

let p: TestPlatform;
let key: string;
let client: OpenAI;
let tokenizer: TextTokenizer;
const BASE = "stories260k";
const STORY = "Once upon a time";

beforeAll(async () => {
  // Parsing the spec blocks the event loop for seconds: done before any connection sits idle in the pool.
  openAiSchema("CreateCompletionResponse");
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "completions"));
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0 });
  tokenizer = await loadTokenizer(findModel(BASE));
});
afterAll(async () => {
  await p.stop();
});

/** `switchyard generate` run as a user runs it; resolves to its stdout. */
function cliGenerate(args: string[]): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), "sy-complete-cli-"));
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/switchyard.mjs"), "generate", ...args, "--data-dir", dataDir], { cwd: REPO_ROOT });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) =>
    child.on("exit", (code) => {
      rmSync(dataDir, { recursive: true, force: true });
      if (code === 0) resolve(stdout);
      else reject(new Error(`switchyard generate exited ${code}: ${stderr}`));
    }),
  );
}

/** The raw SSE `data:` lines of a streamed completion. */
async function sseData(body: Record<string, unknown>): Promise<string[]> {
  const res = await p.call("POST", "/v1/completions", { key, json: { ...body, stream: true } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  return (await res.text()).split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
}

/**
 * A stream chunk's errors against CreateCompletionResponse, which OpenAI says chunks share, though
 * its `finish_reason` is not nullable while every chunk before the last has null there (as OpenAI's
 * own and vLLM's streams do): that one deviation is allowed.
 */
function chunkSpecErrors(chunk: OpenAI.Completion): string[] {
  const open = chunk.choices.flatMap((c, i) => (c.finish_reason === null ? [`/choices/${i}/finish_reason `] : []));
  return specErrors("CreateCompletionResponse", chunk).filter((e) => !open.some((path) => e.startsWith(path)));
}

describe("POST /v1/completions with the official openai client", () => {
  it("continues the prompt greedily exactly as `switchyard generate` does, in OpenAI's published shape", async () => {
    const res = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 20, temperature: 0 });
    expect(specErrors("CreateCompletionResponse", res)).toEqual([]);
    expect(res.object).toBe("text_completion");
    expect(res.id).toMatch(/^cmpl-/);
    expect(res.model).toBe(BASE);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]).toMatchObject({ index: 0, logprobs: null, finish_reason: "length" });
    expect(res.usage).toEqual({ prompt_tokens: tokenizer.encode(STORY, { addSpecialTokens: true }).length, completion_tokens: 20, total_tokens: res.usage!.prompt_tokens + 20 });

    const cli = await cliGenerate(["--model", BASE, "--prompt", STORY, "--temperature", "0", "--max-tokens", "20"]);
    expect(cli).toBe(`${STORY}${res.choices[0].text}\n`);
    const echoed = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 20, temperature: 0, echo: true });
    expect(echoed.choices[0].text).toBe(`${STORY}${res.choices[0].text}`);
  });

  it("defaults to OpenAI's 16 tokens and takes a base model with no chat template at face value", async () => {
    const res = await client.completions.create({ model: BASE, prompt: STORY, temperature: 0 });
    expect(res.usage!.completion_tokens).toBe(16);
    expect(res.choices[0].text).not.toContain("Assistant");
  });

  it("streams text_completion chunks that validate, join to the whole text, and end with usage and [DONE]", async () => {
    const whole = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 24, temperature: 0 });
    const stream = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    const finishReasons: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      expect(chunkSpecErrors(chunk)).toEqual([]);
      expect(chunk).toMatchObject({ object: "text_completion", id: expect.stringMatching(/^cmpl-/), model: BASE });
      for (const choice of chunk.choices) {
        text += choice.text;
        finishReasons.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0].text);
    expect(finishReasons.filter((f) => f !== null)).toEqual(["length"]);
    expect(usage).toEqual(whole.usage);

    const data = await sseData({ model: BASE, prompt: STORY, max_tokens: 5, temperature: 0, echo: true });
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks[0].choices[0].text).toBe(STORY); // the echo comes first
    expect(chunks.every((c) => c.usage === undefined)).toBe(true); // no include_usage, no usage
    expect(chunks.map((c) => c.choices[0].text).join("")).toBe(STORY + (await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 5, temperature: 0 })).choices[0].text);
  });

  it("answers several prompts, strings or token ids, with one choice each by index", async () => {
    const prompts = [STORY, "The little dog"];
    const single = await Promise.all(prompts.map((prompt) => client.completions.create({ model: BASE, prompt, max_tokens: 10, temperature: 0 })));
    const batch = await client.completions.create({ model: BASE, prompt: prompts, max_tokens: 10, temperature: 0 });
    expect(specErrors("CreateCompletionResponse", batch)).toEqual([]);
    expect(batch.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(batch.choices.map((c) => c.text)).toEqual(single.map((s) => s.choices[0].text));
    expect(batch.usage!.prompt_tokens).toBe(single[0].usage!.prompt_tokens + single[1].usage!.prompt_tokens);
    expect(batch.usage!.completion_tokens).toBe(20);

    const ids = prompts.map((s) => tokenizer.encode(s, { addSpecialTokens: true }));
    const byIds = await client.completions.create({ model: BASE, prompt: ids, max_tokens: 10, temperature: 0 });
    expect(byIds.choices.map((c) => c.text)).toEqual(batch.choices.map((c) => c.text));
    const oneById = await client.completions.create({ model: BASE, prompt: ids[1], max_tokens: 10, temperature: 0, echo: true });
    expect(oneById.choices[0].text).toBe(prompts[1] + single[1].choices[0].text);

    const stream = await client.completions.create({ model: BASE, prompt: prompts, max_tokens: 10, temperature: 0, stream: true });
    const texts = ["", ""];
    for await (const chunk of stream) for (const choice of chunk.choices) texts[choice.index] += choice.text;
    expect(texts).toEqual(single.map((s) => s.choices[0].text));
  });

  it("samples reproducibly with a seed and applies stop, top_k, penalties", async () => {
    const sampled = { model: BASE, prompt: STORY, max_tokens: 30, temperature: 1, seed: 42 };
    const [a, b] = await Promise.all([client.completions.create(sampled), client.completions.create(sampled)]);
    expect(a.choices[0].text).toBe(b.choices[0].text);
    const greedy = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 30, temperature: 0 });
    const viaTopK = await client.completions.create({ ...sampled, top_k: 1 } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(viaTopK.choices[0].text).toBe(greedy.choices[0].text);

    const text = greedy.choices[0].text;
    const stopWord = text.trim().split(/\s+/)[3];
    const stopped = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 30, temperature: 0, stop: [stopWord] });
    expect(stopped.choices[0].finish_reason).toBe("stop");
    expect(stopped.choices[0].text).toBe(text.slice(0, text.indexOf(stopWord)));

    const penalized = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 30, temperature: 0, frequency_penalty: 2, presence_penalty: 2 });
    expect(penalized.choices[0].text).not.toBe(text);
    const repetition = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 30, temperature: 0, repetition_penalty: 3 } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(repetition.choices[0].text).not.toBe(text);
  });

  it("picks the adapter through `model`, and retrieves for rag, prepending the context in plain text", async () => {
    await uploadRandomAdapter(p, key, "storyteller", 3);
    const base = await client.completions.create({ model: BASE, prompt: STORY, max_tokens: 12, temperature: 0, logprobs: 0 });
    const tuned = await client.completions.create({ model: "storyteller", prompt: STORY, max_tokens: 12, temperature: 0, logprobs: 0 });
    expect(tuned.choices[0].logprobs!.token_logprobs![0]).not.toBeCloseTo(base.choices[0].logprobs!.token_logprobs![0]!, 4);
    expect((tuned as unknown as { switchyard: unknown }).switchyard).toMatchObject({ strategy: "adapter", adapter: "storyteller@1" });

    await addDocument(p, key, "Dragons", "Zorblat the purple dragon lives in the mountain town of Quexville.");
    const asked = "Zorblat the purple dragon lives in";
    const rag = await client.completions.create({ model: BASE, prompt: asked, max_tokens: 4, temperature: 0, echo: true, strategy: "rag" } as OpenAI.CompletionCreateParamsNonStreaming);
    const extension = (rag as unknown as { switchyard: { strategy: string; sources: { title: string }[] } }).switchyard;
    expect(extension.strategy).toBe("rag");
    expect(extension.sources[0].title).toBe("Dragons");
    expect(rag.choices[0].text).toMatch(/^Context:\n\[1\] Dragons\nZorblat the purple dragon lives in the mountain town of Quexville\.\n\nZorblat the purple dragon lives in/);
    const plain = await client.completions.create({ model: BASE, prompt: asked, max_tokens: 4, temperature: 0 });
    const ragOnly = await client.completions.create({ model: BASE, prompt: asked, max_tokens: 4, temperature: 0, strategy: "rag" } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(rag.choices[0].text.endsWith(asked + ragOnly.choices[0].text)).toBe(true);
    const modelPrompt = rag.choices[0].text.slice(0, rag.choices[0].text.length - ragOnly.choices[0].text.length);
    expect(rag.usage!.prompt_tokens).toBe(tokenizer.encode(modelPrompt, { addSpecialTokens: true }).length);
    expect(rag.usage!.prompt_tokens).toBeGreaterThan(plain.usage!.prompt_tokens);
  });

  it("refuses what it does not do, naming the parameter, as OpenAI-shaped 400s", async () => {
    const bad = async (body: Record<string, unknown>) => {
      const res = await p.call("POST", "/v1/completions", { key, json: { model: BASE, prompt: STORY, ...body } });
      expect(res.status).toBe(400);
      const json = await res.json();
      expect(specErrors("ErrorResponse", json)).toEqual([]);
      return json.error;
    };
    expect(await bad({ suffix: " the end." })).toMatchObject({ param: "suffix", type: "invalid_request_error" });
    expect(await bad({ n: 2 })).toMatchObject({ param: "n" });
    expect(await bad({ prompt: { text: STORY } })).toMatchObject({ param: "prompt" });
    expect(await bad({ prompt: [] })).toMatchObject({ param: "prompt" });
    expect(await bad({ prompt: [1, 99999] })).toMatchObject({ param: "prompt", message: expect.stringContaining("99999") });
    expect(await bad({ prompt: [[1, 2], []] })).toMatchObject({ param: "prompt.1" });
    expect(await bad({ temperature: "hot" })).toMatchObject({ param: "temperature" });
    expect(await bad({ logprobs: true })).toMatchObject({ param: "logprobs" });
    expect(await bad({ max_tokens: 0 })).toMatchObject({ param: "max_tokens" });
    expect(await bad({ echo: "yes" })).toMatchObject({ param: "echo" });
    expect(await bad({ prompt: [1, 2, 3], strategy: "rag" })).toMatchObject({ param: "prompt" });
    expect(await bad({ max_tokens: 100_000 })).toMatchObject({ param: "prompt", code: "context_length_exceeded" });
    expect(await bad({ prompt: "once upon a time ".repeat(200) })).toMatchObject({ code: "context_length_exceeded", message: expect.stringMatching(/maximum context length is 512 tokens.*16 for the completion/) });

    await expect(client.completions.create({ model: "no-such-model", prompt: STORY })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const anonymous = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: "sy_wrong", maxRetries: 0 });
    await expect(anonymous.completions.create({ model: BASE, prompt: STORY })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("accounts usage and applies the tenant's rate limits as chat does", async () => {
    const { tenantId, key: fresh } = await createTenantWithKey(p, "completions-usage");
    const c = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: fresh, maxRetries: 0 });
    const a = await c.completions.create({ model: BASE, prompt: [STORY, "The cat"], max_tokens: 3 });
    const streamed = await c.completions.create({ model: BASE, prompt: STORY, max_tokens: 4, stream: true, stream_options: { include_usage: true } });
    let b: OpenAI.CompletionUsage | undefined;
    for await (const chunk of streamed) b = chunk.usage ?? b;
    const usage = await (await p.call("GET", "/v1/usage", { key: fresh })).json();
    expect(usage.data).toEqual([
      { strategy: "prompt", adapter: null, requests: 2, prompt_tokens: a.usage!.prompt_tokens + b!.prompt_tokens, completion_tokens: 10, total_tokens: a.usage!.total_tokens + b!.total_tokens },
    ]);

    await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { limits: { tokensPerMinute: 30 } } });
    await c.completions.create({ model: BASE, prompt: STORY, max_tokens: 3 }).catch(() => undefined);
    await expect(c.completions.create({ model: BASE, prompt: STORY, max_tokens: 3 })).rejects.toMatchObject({ status: 429, code: "tokens_rate_limit_exceeded" });

    const { tenantId: limitedId, key: limitedKey } = await createTenantWithKey(p, "completions-limited");
    await p.call("PATCH", `/v1/admin/tenants/${limitedId}`, { key: ADMIN_KEY, json: { limits: { requestsPerMinute: 1 } } });
    const limited = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: limitedKey, maxRetries: 0 });
    await limited.completions.create({ model: BASE, prompt: STORY, max_tokens: 2 });
    await expect(limited.completions.create({ model: BASE, prompt: STORY, max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("cancels every prompt's generation when a streaming client disconnects", async () => {
    const gauges = async (...names: string[]) => {
      const text = await (await p.call("GET", "/metrics")).text(); // one reading: a sequence moves between gauges
      return names.map((name) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)![1]));
    };
    const gauge = async (name: string) => (await gauges(name))[0]!;
    const stepsBefore = await gauge("switchyard_engine_decode_steps");
    const abort = new AbortController();
    const res = await fetch(`${p.url}/v1/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: [STORY, "The cat"], max_tokens: 400, temperature: 1, seed: 1, stream: true }),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    let received = "";
    // Text from both prompts (the long one is prefilled in chunks, so it may start later), a few chunks in all.
    const textIndexes = () => new Set([...received.matchAll(/^data: (\{.*\})$/gm)].flatMap(([, json]) => (JSON.parse(json!) as { choices: { index: number; text: string }[] }).choices.filter((c) => c.text).map((c) => c.index)));
    while (textIndexes().size < 2 || (received.match(/"text":"[^"]+"/g) ?? []).length < 6) {
      const chunk = await reader.read();
      if (chunk.done) break;
      received += new TextDecoder().decode(chunk.value);
    }
    expect(received).not.toContain('"finish_reason":"');
    // Both generations are live: decoding, or parked while this test reads the metrics instead of the stream.
    const live = async () => (await gauges("switchyard_engine_running_sequences", "switchyard_engine_paused_sequences")).reduce((a, b) => a + b);
    expect(await live()).toBe(2);
    abort.abort();
    let running = 2;
    for (let i = 0; i < 100 && running > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      running = await live();
    }
    expect(running).toBe(0);
    expect((await gauge("switchyard_engine_decode_steps")) - stepsBefore).toBeLessThan(400); // stopped well before max_tokens
  });

  it("is in the OpenAPI description", async () => {
    const doc = await (await p.call("GET", "/openapi.json")).json();
    const schema = doc.paths["/v1/completions"].post.requestBody.content["application/json"].schema;
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["prompt", "max_tokens", "logprobs", "echo", "stream", "strategy"]));
  });
});
