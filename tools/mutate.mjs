#!/usr/bin/env node
/**
 * Mutation check for the numerical tests: applies each mutant (a small wrong change to the engine,
 * adapter, model or embedder code, as text patches) in place, runs the test files that should
 * notice, and reports which mutants were killed (some test file failed) or survived (all passed).
 * Not part of `npm test`: a developer tool to show that the tests can fail when the code is wrong.
 *
 *   node tools/mutate.mjs                 # every mutant
 *   node tools/mutate.mjs slot peft       # mutants whose name contains "slot" or "peft"
 *   node tools/mutate.mjs --list          # names only
 *
 * The original of a patched file is kept as <file>.mutate-orig until it is restored (in a finally,
 * and on SIGINT/SIGTERM); a run that was killed outright leaves it, and the next run restores it
 * before anything else. Exit code: 0 when every mutant was killed, 1 otherwise.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BACKUP = ".mutate-orig";

/** @type {Array<{ name: string; patches: Array<{ file: string; from: string; to: string }>; tests: string[] }>} */
const MUTANTS = [
  {
    name: "decoder-runner: logits of the first row only",
    patches: [{ file: "services/inference/decoder-runner.ts", from: "return { logits: out.logits.data as Float32Array, picked };", to: "return { logits: (out.logits.data as Float32Array).slice(0, picked * this.config.vocabSize), picked };" }],
    tests: ["tests/services/model/lora.test.ts", "tests/services/inference/kv-cache.test.ts", "tests/services/inference/slot-table.test.ts", "tests/services/adapters/correctness.test.ts"],
  },
  {
    // Shifting every position by one is an equivalent mutant (RoPE sees only relative positions);
    // this one shifts the new tokens of a step against the cached ones.
    name: "decoder-runner: positions off by one after the first step",
    patches: [{ file: "services/inference/decoder-runner.ts", from: "BigInt(input.startPositions[r] + t)", to: "BigInt(input.startPositions[r] + t + (input.startPositions[r] > 0 ? 1 : 0))" }],
    tests: ["tests/services/inference/kv-cache.test.ts", "tests/services/model/lora.test.ts", "tests/services/model/hf-fixtures.test.ts"],
  },
  {
    name: "scheduler: first decode position off by one",
    patches: [{ file: "services/inference/scheduler.ts", from: "next, position: p.seq.promptTokens.length });", to: "next, position: p.seq.promptTokens.length + 1 });" }],
    tests: ["tests/services/inference/engine.test.ts", "tests/services/inference/engine-lora.test.ts"],
  },
  {
    name: "lora-feeds: every adapter row in slot 0 (wrong slot)",
    patches: [{ file: "services/inference/lora-feeds.ts", from: "slot !== NO_ADAPTER && members[slot]!.push(row)", to: "slot !== NO_ADAPTER && members[0]!.push(row)" }],
    tests: ["tests/services/model/lora.test.ts", "tests/services/inference/slot-table.test.ts", "tests/services/adapters/correctness.test.ts"],
  },
  {
    name: "lora-feeds: rank padding at the adapter's own rank",
    patches: [{ file: "services/inference/lora-feeds.ts", from: "(slot * inSize + i) * rank);", to: "(slot * inSize + i) * m.rank);" }],
    tests: ["tests/services/model/lora.test.ts", "tests/services/adapters/correctness.test.ts"],
  },
  {
    name: "slot table: a row gets the next slot (wrong slot)",
    patches: [{ file: "services/inference/slot-table.ts", from: "(a ? slotOf.get(a)! : NO_ADAPTER)", to: "(a ? (slotOf.get(a)! + 1) % this.fedSlots : NO_ADAPTER)" }],
    tests: ["tests/services/inference/slot-table.test.ts", "tests/services/inference/engine-lora.test.ts"],
  },
  {
    name: "slot table: rank-padded copy at the adapter's own rank",
    patches: [{ file: "services/inference/slot-table.ts", from: "aStart + i * R);", to: "aStart + i * r);" }],
    tests: ["tests/services/inference/slot-table.test.ts"],
  },
  {
    name: "peft: scale dropped (B not multiplied by alpha / r)",
    patches: [{ file: "services/adapters/peft.ts", from: "m.outFeatures, m.rank, m.scale);", to: "m.outFeatures, m.rank, 1);" }],
    tests: ["tests/services/adapters/correctness.test.ts"],
  },
  {
    name: "peft: rsLoRA ignored (alpha / r always)",
    patches: [{ file: "services/adapters/peft.ts", from: "config.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank", to: "alpha / rank" }],
    tests: ["tests/services/adapters/correctness.test.ts"],
  },
  {
    name: "config: qwen2 biases only when attention_bias says so",
    patches: [{ file: "services/model/config.ts", from: 'attentionBias: architecture === "qwen2" ? true : c.attention_bias,', to: "attentionBias: c.attention_bias," }],
    tests: ["tests/services/model/hf-fixtures.test.ts"],
  },
  {
    name: "compiler and reference alike: llama3 rope without the smoothed band",
    patches: [
      { file: "services/model/reference.ts", from: "else if (wavelen >= highWavelen) {", to: "else if (wavelen < 0) {" },
      { file: "services/model/llama/rope.ts", from: "const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);\n    return (1 - smooth) * (f / s.factor) + smooth * f;", to: "return f;" },
    ],
    tests: ["tests/services/model/decoder.test.ts", "tests/services/model/hf-fixtures.test.ts"],
  },
  {
    name: "compiler and reference alike: lm_head used even when tied",
    patches: [{ file: "services/model/config.ts", from: "tieWordEmbeddings: c.tie_word_embeddings,", to: "tieWordEmbeddings: false," }],
    tests: ["tests/services/model/hf-fixtures.test.ts"],
  },
  {
    name: "safetensors: BF16 read one bit off",
    patches: [{ file: "services/model/safetensors.ts", from: "bits[i] = halves[i] << 16;", to: "bits[i] = halves[i] << 15;" }],
    tests: ["tests/services/model/hf-fixtures.test.ts", "tests/services/adapters/correctness.test.ts"],
  },
  {
    name: "sentencepiece: ties go to the earlier start",
    patches: [{ file: "services/retrieval/embedders/sentencepiece.ts", from: "score >= best[end]", to: "score > best[end]" }],
    tests: ["tests/services/retrieval/sentencepiece.test.ts"],
  },
  {
    name: "sentencepiece: unknown characters not merged",
    patches: [{ file: "services/retrieval/embedders/sentencepiece.ts", from: "return ids.filter((id, i) => !(id === UNK && ids[i - 1] === UNK));", to: "return ids;" }],
    tests: ["tests/services/retrieval/sentencepiece.test.ts"],
  },
  {
    name: "use-lite: int8 quantization step off (max / 60 instead of max / 63)",
    patches: [{ file: "services/retrieval/embedders/use-lite.ts", from: "scales[j] = scales[j] / INT8_WEIGHT_MAX || 1;", to: "scales[j] = scales[j] / 60 || 1;" }],
    tests: ["tests/services/retrieval/use-lite.test.ts"],
  },
  {
    name: "use-lite: int8 graph fed scales 1.5x too large",
    patches: [{ file: "services/retrieval/embedders/use-lite.ts", from: '"float32", [shape[1]], q.scales)', to: '"float32", [shape[1]], q.scales.map((s) => s * 1.5))' }],
    tests: ["tests/services/retrieval/use-lite.test.ts"],
  },
  {
    name: "use-lite: 8-bit int8 weights (saturating on CPUs without VNNI)",
    patches: [{ file: "services/retrieval/embedders/use-lite.ts", from: "export const INT8_WEIGHT_MAX = 63;", to: "export const INT8_WEIGHT_MAX = 127;" }],
    tests: ["tests/services/retrieval/use-lite.test.ts"],
  },
];

function restoreLeftovers(dir = root) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === ".git") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) restoreLeftovers(path);
    else if (entry.name.endsWith(BACKUP)) {
      renameSync(path, path.slice(0, -BACKUP.length));
      console.log(`restored ${relative(root, path.slice(0, -BACKUP.length))} from an interrupted run`);
    }
  }
}

/** Applies the patches; returns a function that restores every patched file. */
function apply(patches) {
  const touched = [];
  const restore = () => {
    for (const path of touched.splice(0)) renameSync(path + BACKUP, path);
  };
  try {
    for (const { file, from, to } of patches) {
      const path = join(root, file);
      const text = readFileSync(path, "utf8");
      const count = text.split(from).length - 1;
      if (count !== 1) throw new Error(`${file}: the text to replace occurs ${count} times, not once: ${JSON.stringify(from)}`);
      if (!existsSync(path + BACKUP)) {
        copyFileSync(path, path + BACKUP);
        touched.push(path);
      }
      writeFileSync(path, text.replace(from, () => to));
    }
  } catch (e) {
    restore();
    throw e;
  }
  return restore;
}

function runTests(file) {
  const vitest = join(root, "node_modules/.bin/vitest");
  const result = spawnSync(vitest, ["run", file, "--reporter=dot", "--bail=1"], { cwd: root, encoding: "utf8", env: { ...process.env, CI: "1" } });
  return result.status === 0;
}

function main() {
  const args = process.argv.slice(2);
  if (args.includes("--list")) {
    for (const m of MUTANTS) console.log(m.name);
    return 0;
  }
  restoreLeftovers();
  const chosen = MUTANTS.filter((m) => !args.length || args.some((a) => m.name.includes(a)));
  let restore = () => {};
  const onSignal = () => {
    restore();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const survived = [];
  for (const mutant of chosen) {
    try {
      restore = apply(mutant.patches);
    } catch (e) {
      survived.push(mutant.name);
      console.log(`NOT RUN   ${mutant.name}\n          ${e.message}`);
      continue;
    }
    const killers = [];
    try {
      for (const file of mutant.tests) if (!runTests(file)) killers.push(file);
    } finally {
      restore();
    }
    if (killers.length) console.log(`KILLED    ${mutant.name}\n          by ${killers.join(", ")} (of ${mutant.tests.length} files run)`);
    else {
      survived.push(mutant.name);
      console.log(`SURVIVED  ${mutant.name}\n          ${mutant.tests.join(", ")} all passed`);
    }
  }
  console.log(`\n${chosen.length - survived.length} of ${chosen.length} mutants killed`);
  return survived.length ? 1 : 0;
}

process.exitCode = main();
