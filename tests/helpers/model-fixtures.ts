/** Shared test fixtures: the real models on the search path, and a small synthetic tokenizer. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Locates a shared model through the model search path, resolved from the repo root. */
export function findSharedModel(name: string): string {
  const searchPath = process.env.SWITCHYARD_MODEL_PATH ?? "./models:../shared/models";
  for (const entry of searchPath.split(":").filter(Boolean)) {
    const dir = resolve(repoRoot, entry, name);
    if (existsSync(join(dir, "config.json")) || existsSync(join(dir, "tokenizer.json"))) return dir;
  }
  throw new Error(`model ${name} not found on the search path ${searchPath}`);
}

/** A GPT-2 style byte-level BPE tokenizer over all 256 bytes with two merges and ChatML specials. */
export function byteLevelTokenizerJson() {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const vocab: Record<string, number> = {};
  let extra = 256;
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(printable(b) ? b : extra++)] = b;
  vocab["Ġh"] = 256;
  vocab["Ġhi"] = 257;
  return {
    version: "1.0",
    added_tokens: [
      { id: 258, content: "<|im_start|>", special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
      { id: 259, content: "<|im_end|>", special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges: ["Ġ h", "Ġh i"] },
  };
}
