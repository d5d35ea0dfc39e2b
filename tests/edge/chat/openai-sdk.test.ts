import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_KEY, createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { uploadRandomAdapter } from "./fixtures.ts";

let p: TestPlatform;
let key: string;
let client: OpenAI;
const BASE = "stories260k";
const story = [{ role: "user" as const, content: "Once upon a time" }];

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p, "sdk"));
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0 });
});
afterAll(async () => {
  await p.stop();
});

describe("the official openai client against a running server", () => {
  it("gets a non-streaming completion in OpenAI's shape, with usage", async () => {
    const res = await client.chat.completions.create({ model: BASE, messages: story, max_tokens: 24, temperature: 0 });
    expect(res.object).toBe("chat.completion");
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.model).toBe(BASE);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0].message.role).toBe("assistant");
    expect(res.choices[0].message.content!.length).toBeGreaterThan(10);
    expect(res.choices[0].finish_reason).toBe("length");
    expect(res.usage).toMatchObject({ completion_tokens: 24 });
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + 24);
  });

  it("streams the same text it returns without streaming, ending with usage", async () => {
    const whole = await client.chat.completions.create({ model: BASE, messages: story, max_tokens: 30, temperature: 0 });
    const stream = await client.chat.completions.create({
      model: BASE,
      messages: story,
      max_tokens: 30,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    const finishReasons: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? "";
        finishReasons.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0].message.content);
    expect(finishReasons.at(-1)).toBe("length");
    expect(usage).toEqual(whole.usage);
  });

  it("stops at a stop sequence, leaving it out", async () => {
    const free = await client.chat.completions.create({ model: BASE, messages: story, max_tokens: 40, temperature: 0 });
    const text = free.choices[0].message.content!;
    const stopWord = text.trim().split(/\s+/)[3];
    const stopped = await client.chat.completions.create({ model: BASE, messages: story, max_tokens: 40, temperature: 0, stop: [stopWord] });
    expect(stopped.choices[0].finish_reason).toBe("stop");
    expect(stopped.choices[0].message.content).toBe(text.slice(0, text.indexOf(stopWord)));
  });

  it("picks the adapter through `model`, and it changes the answer", async () => {
    await uploadRandomAdapter(p, key, "storyteller", 7);
    const models = await client.models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toContain(BASE);
    expect(ids).toContain("storyteller");
    const base = await client.chat.completions.create({ model: BASE, messages: story, max_tokens: 20, temperature: 0, logprobs: true });
    const tuned = await client.chat.completions.create({ model: "storyteller", messages: story, max_tokens: 20, temperature: 0, logprobs: true });
    const both = await client.chat.completions.create({ model: `${BASE}:storyteller`, messages: story, max_tokens: 20, temperature: 0 });
    expect(tuned.choices[0].message.content).toBe(both.choices[0].message.content);
    expect(base.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(tuned.choices[0].message.content).not.toBe(base.choices[0].message.content);
    expect(tuned.choices[0].logprobs!.content![0].logprob).not.toBeCloseTo(base.choices[0].logprobs!.content![0].logprob, 4);
    expect((tuned as unknown as { switchyard: { strategy: string; adapter: string } }).switchyard).toMatchObject({ strategy: "adapter", adapter: "storyteller@1" });
  });

  it("returns logprobs of the chosen and top tokens", async () => {
    const res = await client.chat.completions.create({ model: BASE, messages: story, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = res.choices[0].logprobs!.content!;
    expect(content).toHaveLength(5);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.top_logprobs).toHaveLength(3);
      expect(entry.top_logprobs[0].logprob).toBeCloseTo(entry.logprob, 5); // greedy: chosen = most likely
    }
    expect(content.map((c) => c.token).join("")).toBe(res.choices[0].message.content);
  });

  it("surfaces errors as the SDK's typed errors", async () => {
    const badKey = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: "sy_wrong", maxRetries: 0 });
    await expect(badKey.chat.completions.create({ model: BASE, messages: story })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(client.chat.completions.create({ model: "no-such-model", messages: story })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = client.chat.completions.create({ model: BASE, messages: story, temperature: 7 });
    await expect(bad).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(bad).rejects.toMatchObject({ param: "temperature" });
    await expect(client.chat.completions.create({ model: BASE, messages: story, n: 2 })).rejects.toMatchObject({ status: 400, param: "n" });
    const tooLong = client.chat.completions.create({ model: BASE, messages: story, max_tokens: 100_000 });
    await expect(tooLong).rejects.toMatchObject({ status: 400, code: "context_length_exceeded" });

    const { tenantId, key: limitedKey } = await createTenantWithKey(p, "sdk-limited");
    await p.call("PATCH", `/v1/admin/tenants/${tenantId}`, { key: ADMIN_KEY, json: { limits: { requestsPerMinute: 1 } } });
    const limited = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: limitedKey, maxRetries: 0 });
    await limited.chat.completions.create({ model: BASE, messages: story, max_tokens: 2 });
    await expect(limited.chat.completions.create({ model: BASE, messages: story, max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("accounts usage per strategy and adapter", async () => {
    const { key: fresh } = await createTenantWithKey(p, "usage");
    const c = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: fresh, maxRetries: 0 });
    const a = await c.chat.completions.create({ model: BASE, messages: story, max_tokens: 3 });
    const b = await c.chat.completions.create({ model: BASE, messages: story, max_tokens: 4 });
    const usage = await (await p.call("GET", "/v1/usage", { key: fresh })).json();
    expect(usage.data).toEqual([
      { strategy: "prompt", adapter: null, requests: 2, prompt_tokens: a.usage!.prompt_tokens + b.usage!.prompt_tokens, completion_tokens: 7, total_tokens: a.usage!.total_tokens + b.usage!.total_tokens },
    ]);
  });
});
