/**
 * trainPromptTuning on stories260k: 8 virtual tokens, initialised from a text, learn the small
 * question-and-answer set of tests/fixtures/training/qa.jsonl (validated on the same chats: the point
 * is that the prompt alone moves the loss); the export is a PEFT prompt-tuning folder the adapter
 * catalog's validation accepts and loads back as the trained embeddings.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadAdapter, validateAdapter } from "../../services/adapters/validate.ts";
import { parseTrainingData } from "../../services/files/training-data.ts";
import { loadChatTemplate } from "../../services/model/chat-template.ts";
import { loadDecoderConfig, type DecoderConfig } from "../../services/model/config.ts";
import { isPromptTuning } from "../../services/model/prompt-tuning.ts";
import { loadTokenizer } from "../../services/model/tokenizer.ts";
import { encodeExample, type EncodedExample } from "../../trainer/dataset.ts";
import { exportPromptTuning, trainPromptTuning } from "../../trainer/prompt-tuning.ts";
import { findModel } from "../helpers/model-path.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/training/qa.jsonl");
const N = 8;

let modelDir: string;
let workDir: string;
let config: DecoderConfig;
let examples: EncodedExample[];
let initText: number[];
beforeAll(async () => {
  modelDir = findModel("stories260k");
  workDir = await mkdtemp(join(tmpdir(), "sy-prompt-tuning-"));
  config = await loadDecoderConfig(modelDir);
  const [template, tokenizer] = await Promise.all([loadChatTemplate(modelDir), loadTokenizer(modelDir)]);
  const parsed = parseTrainingData(readFileSync(FIXTURE, "utf8"));
  expect(parsed.errors).toEqual([]);
  examples = parsed.examples.map((e) => encodeExample(e, { template, tokenizer, eosTokenId: config.eosTokenIds[0] }, 128)!);
  initText = tokenizer.encode("Answer the question with the fact.", { addSpecialTokens: false });
});
afterAll(async () => rm(workDir, { recursive: true, force: true }));

it("learns the set with the prompt alone, and exports a folder the catalog imports", async () => {
  const losses: number[] = [];
  const result = await trainPromptTuning({
    modelDir,
    workDir,
    training: examples,
    validation: examples,
    numVirtualTokens: N,
    init: { text: initText },
    steps: 60,
    learningRate: 0.05,
    batchSize: 4,
    seed: 1,
    threads: 2,
    onStep: (_, loss) => void losses.push(loss),
  });
  console.log(`prompt tuning: validation loss ${result.validationLoss.before.toFixed(3)} -> ${result.validationLoss.after.toFixed(3)}, ${(result.tokens / result.seconds).toFixed(0)} tokens/s`);
  expect(losses.length).toBe(60);
  expect(result.validationLoss.after).toBeLessThan(0.6 * result.validationLoss.before);

  const files = exportPromptTuning(result.embeddings, { numVirtualTokens: N, hiddenSize: config.hiddenSize, baseModel: "stories260k" });
  const shape = { ...config, maxPositionEmbeddings: config.maxPositionEmbeddings };
  expect(validateAdapter(files, shape, { maxRank: 16 })).toMatchObject({ kind: "prompt_tuning", numVirtualTokens: N });
  const loaded = loadAdapter("trained", files, shape, { maxRank: 16 });
  expect(isPromptTuning(loaded) && Array.from(loaded.embeddings)).toEqual(Array.from(result.embeddings));
});
