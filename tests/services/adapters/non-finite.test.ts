import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ADAPTER_WEIGHT } from "../../../services/adapters/peft.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { writeSafetensors } from "../../../services/model/safetensors.ts";
import { STORIES_SHAPE } from "../../edge/chat/fixtures.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  ({ key } = await createTenantWithKey(p));
});
afterAll(async () => p.stop());

const B_TENSOR = "base_model.model.model.layers.3.mlp.down_proj.lora_B.weight";
const A_TENSOR = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

/** A random adapter with one value overwritten (or its alpha changed), as a multipart upload. */
function upload(name: string, change: { tensor?: string; value?: number; alpha?: number }) {
  const adapter = randomPeftAdapter(STORIES_SHAPE, { rank: 4, seed: 5, alpha: change.alpha });
  if (change.tensor) adapter.tensors[change.tensor]!.data[7] = change.value!;
  const model = writeSafetensors(Object.fromEntries(Object.entries(adapter.tensors).map(([k, t]) => [k, { dtype: "F32" as const, shape: t.shape, data: t.data }])));
  const form = new FormData();
  form.append("name", name);
  form.append("adapter_config", new Blob([new Uint8Array(adapter.files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(model)]), "adapter_model.safetensors");
  return p.call("POST", "/v1/adapters", { key, body: form });
}

describe("adapter import refuses non-finite and absurd weights, naming the tensor", () => {
  it.each([
    ["NaN in lora_B", { tensor: B_TENSOR, value: Number.NaN }, B_TENSOR, "NaN"],
    ["+Infinity in lora_A", { tensor: A_TENSOR, value: Number.POSITIVE_INFINITY }, A_TENSOR, "Infinity"],
    ["-Infinity in lora_B", { tensor: B_TENSOR, value: Number.NEGATIVE_INFINITY }, B_TENSOR, "-Infinity"],
    ["a magnitude of 1e6", { tensor: A_TENSOR, value: 1e6 }, A_TENSOR, "1000000"],
  ])("%s: 400 non_finite_weights", async (_, change, tensor, shown) => {
    const res = await upload("broken", change);
    expect(res.status).toBe(400);
    const { error } = await res.json();
    expect(error.code).toBe("non_finite_weights");
    expect(error.message).toContain(`"${tensor}"`);
    expect(error.message).toContain(`holds ${shown} at index 7`);
  });

  it("refuses finite weights that the LoRA scale blows past the limit", async () => {
    const res = await upload("loud", { alpha: 4 * 1e6 }); // scale 1e6, weights up to 0.1
    expect(res.status).toBe(400);
    const { error } = await res.json();
    expect(error.code).toBe("non_finite_weights");
    expect(error.message).toMatch(/lora_B\.weight" holds .* \(x scale 1000000\)/);
    expect(error.message).toContain(`at most ${MAX_ADAPTER_WEIGHT}`);
  });

  it("stores nothing refused, still takes a sane adapter, and generation stays finite", async () => {
    expect((await (await p.call("GET", "/v1/adapters", { key })).json()).data).toEqual([]);
    expect((await upload("sane", { tensor: A_TENSOR, value: 0.5 })).status).toBe(201);
    const chat = await p.call("POST", "/v1/chat/completions", {
      key,
      json: { model: "stories260k:sane", messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 8, temperature: 0, logprobs: true },
    });
    expect(chat.status).toBe(200);
    const tokens = (await chat.json()).choices[0].logprobs.content as Array<{ logprob: number }>;
    expect(tokens.length).toBeGreaterThan(0);
    for (const t of tokens) expect(Number.isFinite(t.logprob)).toBe(true);
  });
});
