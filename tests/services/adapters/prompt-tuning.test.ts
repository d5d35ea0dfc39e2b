/**
 * PEFT prompt-tuning adapters through the adapter catalog: accepted next to LoRA with their kind and
 * virtual tokens, loaded as the engine's embeddings, and refused with a reason (nothing stored) when
 * they do not fit the base model.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdapterService, type AdapterService } from "../../../services/adapters/index.ts";
import { randomPeftAdapter, randomPromptTuningAdapter } from "../../../services/adapters/synthetic.ts";
import { isPromptTuning } from "../../../services/model/prompt-tuning.ts";
import { writeSafetensors } from "../../../services/model/safetensors.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { adapters, tenants } from "../../../services/store/schema.ts";
import { refusal, STORIES, utf8, zipOf } from "../../helpers/adapters.ts";

/** stories260k's shape with its context of 512 positions. */
const BASE = { ...STORIES, maxPositionEmbeddings: 512 };

let dataDir: string;
let store: OpenDatabase;
let service: AdapterService;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "adapters-prompt-tuning-"));
  store = openDatabase(join(dataDir, "switchyard.db"));
  store.db.insert(tenants).values([{ id: "t_acme", name: "Acme" }]).run();
  service = await createAdapterService({ db: store.db, dataDir, base: { id: "stories260k", shape: BASE }, limits: { maxRank: 16 }, cacheBudgetBytes: 16 << 20 });
});
afterAll(() => {
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const upload = (name: string, files: { config: Uint8Array; model: Uint8Array }) => service.catalog.upload({ tenantId: "t_acme", name, source: files });
const withConfig = (extra: Record<string, unknown>, n = 4) => randomPromptTuningAdapter(BASE, { numVirtualTokens: n, extraConfig: extra }).files;

describe("prompt-tuning adapters in the catalog", () => {
  it("an archive is accepted with its kind and virtual tokens, and loads as the embeddings PEFT saved", async () => {
    const { files, embeddings } = randomPromptTuningAdapter(BASE, { numVirtualTokens: 6, seed: 3 });
    const archive = zipOf({ "pt/adapter_config.json": files.config, "pt/adapter_model.safetensors": files.model });
    const info = await service.catalog.upload({ tenantId: "t_acme", name: "pt", source: { archive } });
    expect(info).toMatchObject({ kind: "prompt_tuning", numVirtualTokens: 6, rank: 0, targetModules: [] });
    const weights = await service.cache.get(info.id);
    if (!isPromptTuning(weights)) throw new Error("expected prompt-tuning weights");
    expect(weights.numVirtualTokens).toBe(6);
    expect(Array.from(weights.embeddings)).toEqual(Array.from(embeddings));
    const lora = await upload("lora", randomPeftAdapter(BASE, { targets: ["q_proj"] }).files);
    expect(lora).toMatchObject({ kind: "lora", numVirtualTokens: null, rank: 4 });
    expect((await service.catalog.list({ tenantId: "t_acme" })).map((a) => a.kind).sort()).toEqual(["lora", "prompt_tuning"]);
    // A download uploads back unchanged.
    const back = await service.catalog.archive(info.id, { tenantId: "t_acme" }, "zip");
    expect(await service.catalog.upload({ tenantId: "t_acme", name: "pt", source: { archive: back.bytes } })).toMatchObject({ version: 2, kind: "prompt_tuning", sha256: info.sha256 });
  });

  it("half-precision embeddings are accepted", async () => {
    const info = await upload("pt-bf16", randomPromptTuningAdapter(BASE, { dtype: "BF16" }).files);
    expect(info.kind).toBe("prompt_tuning");
  });

  it("refuses what does not fit, with the reason, and stores nothing", async () => {
    const rows = () => store.db.select().from(adapters).all().length;
    const dirs = () => readdirSync(join(dataDir, "adapters")).length;
    const [rowsBefore, dirsBefore] = [rows(), dirs()];
    const good = randomPromptTuningAdapter(BASE).files;
    const tensor = (name: string, dtype: "F32" | "F16", shape: number[]) =>
      writeSafetensors({ [name]: { dtype, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) } });
    const cases: Array<[string, { config: Uint8Array; model: Uint8Array }, string, RegExp]> = [
      ["hidden size", randomPromptTuningAdapter({ hiddenSize: 32 }, { extraConfig: { token_dim: 64 } }).files, "shape_mismatch", /\[4,32\].*\[4,64\]/],
      ["token_dim", withConfig({ token_dim: 128 }), "shape_mismatch", /token_dim 128 is not the base model's hidden size 64/],
      ["virtual tokens vs config", { config: withConfig({ num_virtual_tokens: 5 }).config, model: good.model }, "shape_mismatch", /\[4,64\].*\[5,64\]/],
      ["too many virtual tokens", withConfig({}, 300), "too_many_virtual_tokens", /300 is more than 256, half the base model's context of 512/],
      ["missing tensor", { config: good.config, model: tensor("prompt_encoder.weight", "F32", [4, 64]) }, "missing_tensor", /no "prompt_embeddings" tensor.*"prompt_encoder.weight"/],
      ["extra tensor", { config: good.config, model: writeSafetensors({ prompt_embeddings: { dtype: "F32", shape: [4, 64], data: new Float32Array(256) }, extra: { dtype: "F32", shape: [1], data: new Float32Array(1) } }) }, "unknown_module", /"extra"/],
      ["wrong dtype", { config: good.config, model: int64Tensor("prompt_embeddings", [4, 64]) }, "corrupt_safetensors", /unsupported dtype "I64"/],
      ["non-finite value", { config: good.config, model: writeSafetensors({ prompt_embeddings: { dtype: "F32", shape: [4, 64], data: new Float32Array(256).fill(Number.NaN) } }) }, "non_finite_weights", /NaN at index 0/],
      ["task type", withConfig({ task_type: "SEQ_CLS" }), "unsupported_option", /task_type "SEQ_CLS"/],
      ["encoder-decoder", withConfig({ num_transformer_submodules: 2 }), "unsupported_option", /num_transformer_submodules 2/],
      ["init", withConfig({ prompt_tuning_init: "MAGIC" }), "invalid_config", /prompt_tuning_init/],
      ["no virtual tokens", withConfig({ num_virtual_tokens: 0 }), "invalid_config", /num_virtual_tokens/],
    ];
    for (const [what, files, reason, message] of cases) {
      const e = await refusal(upload("bad", files));
      expect(e.reason, what).toBe(reason);
      expect(e.message, what).toMatch(message);
      expect(e.kind, what).toBe("invalid_request");
    }
    expect(rows()).toBe(rowsBefore);
    expect(dirs()).toBe(dirsBefore);
  });

  it("other PEFT types are still refused by name", async () => {
    const e = await refusal(upload("ia3", { config: utf8(JSON.stringify({ peft_type: "IA3" })), model: randomPromptTuningAdapter(BASE).files.model }));
    expect(e.message).toMatch(/peft_type "IA3" is not supported; only LORA and PROMPT_TUNING/);
  });
});

/** A safetensors file holding one int64 tensor (a dtype the parser refuses). */
function int64Tensor(name: string, shape: number[]): Uint8Array {
  const bytes = shape.reduce((a, b) => a * b, 1) * 8;
  const header = new TextEncoder().encode(JSON.stringify({ [name]: { dtype: "I64", shape, data_offsets: [0, bytes] } }));
  const out = new Uint8Array(8 + header.length + bytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  return out;
}
