/**
 * A chat through the HTTP API with an uploaded PEFT prompt-tuning adapter: listed with its kind,
 * served by name, and its answer's logprobs are the reference forward's with the adapter's virtual
 * embeddings before the rendered chat prompt.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { randomPromptTuningAdapter } from "../../../services/adapters/synthetic.ts";
import { loadChatTemplate } from "../../../services/model/chat-template.ts";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { ReferenceDecoder } from "../../../services/model/reference.ts";
import { loadTokenizer } from "../../../services/model/tokenizer.ts";
import { expectClose } from "../../helpers/compare.ts";
import { findModel } from "../../helpers/model-path.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { MemoryWeights } from "../../helpers/tiny-model.ts";
import { STORIES_SHAPE } from "./fixtures.ts";

let p: TestPlatform;
let key: string;
beforeAll(async () => {
  p = await startTestPlatform();
});
afterAll(async () => {
  await p.stop();
});

it("chats with a prompt-tuning adapter as the reference forward with its virtual tokens first", async () => {
  ({ key } = await createTenantWithKey(p, "pt-tenant"));
  const { files, embeddings } = randomPromptTuningAdapter(STORIES_SHAPE, { numVirtualTokens: 6, seed: 21 });
  const form = new FormData();
  form.append("name", "soft-prompt");
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  const uploaded = await p.call("POST", "/v1/adapters", { key, body: form });
  expect(uploaded.status).toBe(201);
  expect(await uploaded.json()).toMatchObject({ name: "soft-prompt", adapter_type: "prompt_tuning", num_virtual_tokens: 6, rank: 0 });

  const messages = [{ role: "user" as const, content: "Tell me about a cat." }];
  const res = await p.call("POST", "/v1/chat/completions", { key, json: { model: "soft-prompt", messages, max_tokens: 8, temperature: 0, logprobs: true } });
  expect(res.status).toBe(200);
  const body = await res.json();
  expect(body.switchyard).toMatchObject({ strategy: "adapter", adapter: "soft-prompt@1" });
  const served: Array<{ token: string; logprob: number }> = body.choices[0].logprobs.content;
  expect(served.length).toBeGreaterThan(0);

  const dir = findModel("stories260k");
  const [config, tokenizer, template, base] = await Promise.all([loadDecoderConfig(dir), loadTokenizer(dir), loadChatTemplate(dir), MemoryWeights.load(dir)]);
  const prompt = tokenizer.encode(template.render(messages, { addGenerationPrompt: true }), { addSpecialTokens: template.encodeWithSpecialTokens });
  expect(body.usage.prompt_tokens).toBe(prompt.length); // the virtual tokens are the adapter's, not the user's
  const ref = new ReferenceDecoder(config, (n) => base.getF32(n));
  const cache = ref.newCache();
  const h = config.hiddenSize;
  ref.forwardEmbeddings(cache, Array.from({ length: 6 }, (_, k) => embeddings.subarray(k * h, (k + 1) * h)));
  let logits = ref.forward(cache, prompt).at(-1)!;
  const want: number[] = [];
  const pieces: string[] = [];
  for (let i = 0; i < served.length; i++) {
    const token = logits.indexOf(Math.max(...logits));
    const max = logits[token]!;
    want.push(-Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0)));
    pieces.push(new TextDecoder().decode(tokenizer.tokenBytes(token)));
    [logits] = ref.forward(cache, [token]);
  }
  expect(served.map((c) => c.token)).toEqual(pieces);
  expectClose(served.map((c) => c.logprob), want, 1e-4, "answer logprobs");
});

it("counts the virtual tokens when it fits a prompt: the rest of the window is what is left after them", async () => {
  const dir = findModel("stories260k");
  const [config, tokenizer, template] = await Promise.all([loadDecoderConfig(dir), loadTokenizer(dir), loadChatTemplate(dir)]);
  const promptLength = (content: string) =>
    tokenizer.encode(template.render([{ role: "user", content }], { addGenerationPrompt: true }), { addSpecialTokens: template.encodeWithSpecialTokens }).length;
  let words = 1;
  while (promptLength("cat ".repeat(words + 1)) <= config.maxPositionEmbeddings - 10) words++;
  const content = "cat ".repeat(words);
  const room = config.maxPositionEmbeddings - promptLength(content); // 10 or a little more
  const chat = (extra: object) => p.call("POST", "/v1/chat/completions", { key, json: { model: "soft-prompt", messages: [{ role: "user", content }], temperature: 0, ...extra } });

  const rest = await chat({});
  expect(rest.status).toBe(200);
  expect((await rest.json()).usage.completion_tokens).toBeLessThanOrEqual(room - 6);

  const tooMany = await chat({ max_tokens: room - 3 }); // fits the window without the 6 virtual tokens, not with them
  expect(tooMany.status).toBe(400);
  const error = (await tooMany.json()).error;
  expect(error.code).toBe("context_length_exceeded");
  expect(error.message).toContain(String(config.maxPositionEmbeddings - room + 6));
});
