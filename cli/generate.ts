/**
 * `switchyard generate --model DIR_OR_REPO --prompt TEXT [options]`: loads the model (and an
 * adapter), streams the completion to stdout, then with --logprobs each token's logprob and its
 * top alternatives, and a one-line summary (tokens, speed) to stderr.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { SamplingParams, TokenLogprob } from "../ports/index.ts";
import { createEngine, unpinnedAdapters } from "../services/inference/engine.ts";
import { loadDecoderConfig } from "../services/model/config.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { loadCliAdapter } from "./adapter-source.ts";
import { formatHelp, type CommandHelp } from "./help.ts";
import { createProgressReporter, downloadProgress } from "./progress.ts";
import { loraOf } from "../services/model/prompt-tuning.ts";

/** The options, each with its help: the parser and `--help` both read this table. */
const OPTIONS = {
  model: { type: "string", value: "DIR_OR_REPO", text: "model folder, search-path name or Hugging Face repo id (default: first on $SWITCHYARD_MODEL_PATH)" },
  prompt: { type: "string", value: "TEXT", text: "the text to continue (required)" },
  "max-tokens": { type: "string", value: "N", text: "most tokens to generate (default 128)" },
  temperature: { type: "string", value: "T", text: "sampling temperature, 0 for greedy (default 0.8)" },
  seed: { type: "string", value: "S", text: "seed for reproducible sampling" },
  "top-p": { type: "string", value: "P", text: "nucleus sampling mass in (0, 1] (default 1)" },
  "top-k": { type: "string", value: "K", text: "sample among the K most likely tokens, 0 for all (default 0)" },
  stop: { type: "string", multiple: true, value: "TEXT", text: "stop before this text (repeatable)" },
  adapter: { type: "string", value: "NAME|PATH", text: "a PEFT adapter folder, or an adapter stored in the data dir (id, name or name@version)" },
  logprobs: { type: "string", value: "N", text: "after the text, print each token's logprob and its N most likely alternatives" },
  "data-dir": { type: "string", value: "DIR", text: "data dir: compile cache and adapter catalog (default $SWITCHYARD_DATA_DIR or ./data)" },
} as const satisfies Record<string, { type: "string"; multiple?: boolean; value: string; text: string }>;

export const GENERATE_HELP: CommandHelp = {
  usage: "generate --prompt TEXT [options]",
  summary: "Continues a prompt with a model (no chat template), streaming the text to stdout and a summary to stderr.",
  options: Object.entries(OPTIONS).map(([name, o]) => ({ flag: `--${name} ${o.value}`, text: o.text })),
};

export interface GenerateIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

class UsageError extends Error {}

interface GenerateArgs {
  model?: string;
  prompt: string;
  dataDir: string;
  adapter?: string;
  params: SamplingParams;
}

function number(name: string, value: string | undefined, fallback: number, check: (n: number) => boolean): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`invalid --${name}: ${value}`);
  return n;
}

const isCount = (n: number) => Number.isInteger(n) && n >= 0;

function parse(argv: string[]): GenerateArgs {
  let values;
  try {
    const options = Object.fromEntries(Object.entries(OPTIONS).map(([name, o]) => [name, { type: o.type, multiple: "multiple" in o && o.multiple }]));
    ({ values } = parseArgs({ args: argv, options, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const text = (name: keyof typeof OPTIONS) => values[name] as string | undefined;
  const prompt = text("prompt");
  if (prompt === undefined) throw new UsageError("--prompt is required");
  const seed = text("seed") === undefined ? undefined : number("seed", text("seed"), 0, isCount);
  const logprobs = text("logprobs") === undefined ? undefined : number("logprobs", text("logprobs"), 0, (n) => isCount(n) && n <= 20);
  return {
    model: text("model"),
    prompt,
    dataDir: text("data-dir") ?? process.env.SWITCHYARD_DATA_DIR ?? "./data",
    adapter: text("adapter"),
    params: {
      maxTokens: number("max-tokens", text("max-tokens"), 128, (n) => Number.isInteger(n) && n > 0),
      temperature: number("temperature", text("temperature"), 0.8, (n) => n >= 0),
      topP: number("top-p", text("top-p"), 1, (n) => n > 0 && n <= 1),
      topK: number("top-k", text("top-k"), 0, isCount),
      minP: 0,
      repetitionPenalty: 1,
      frequencyPenalty: 0,
      presencePenalty: 0,
      seed,
      stop: (values.stop as string[] | undefined) ?? [],
      logprobs,
    },
  };
}

export async function generateCommand(argv: string[], io: GenerateIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: GenerateArgs;
  try {
    args = parse(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`switchyard generate: ${err.message}\n${formatHelp(GENERATE_HELP)}`);
    return 2;
  }
  const progress = createProgressReporter(io.stderr);
  try {
    const modelDir = await resolveModel(args.model, { ...resolveOptionsFromEnv(), onProgress: downloadProgress(progress) });
    progress.stop();
    await run(args, modelDir, io);
    return 0;
  } catch (err) {
    progress.stop();
    io.stderr.write(`switchyard generate: ${(err as Error).message}\n`);
    return 1;
  }
}

async function run(args: GenerateArgs, modelDir: string, io: GenerateIo): Promise<void> {
  const baseId = modelDir.split(/[\\/]/).pop()!;
  const adapter = args.adapter && (await loadCliAdapter(args.adapter, { dataDir: args.dataDir, baseId, shape: await loadDecoderConfig(modelDir), maxRank: 256 }));
  const engine = await createEngine({
    modelDir,
    cacheDir: join(args.dataDir, "compiled"),
    ...(adapter && { adapters: unpinnedAdapters(async () => adapter), maxLoraRank: loraOf(adapter)?.maxRank ?? 1, maxAdaptersPerBatch: 1 }),
  });
  try {
    // The model's template decides about BOS for chat; a raw prompt gets the tokenizer's specials.
    const promptTokens = engine.tokenize(args.prompt, { addSpecialTokens: true });
    const logprobs: (TokenLogprob & { top: TokenLogprob[] })[] = [];
    io.stdout.write(args.prompt);
    for await (const event of engine.generate({ promptTokens, params: args.params, adapter: adapter ? adapter.id : undefined })) {
      if (event.type === "text") {
        io.stdout.write(event.text);
        if (event.logprob) logprobs.push(event.logprob);
      } else if (event.type === "done") {
        const seconds = event.timings.totalMs / 1000;
        io.stdout.write("\n");
        if (args.params.logprobs !== undefined) io.stdout.write(logprobTable(logprobs));
        io.stderr.write(
          `[${event.completionTokens} tokens, ${event.finishReason}, first token ${event.timings.firstTokenMs.toFixed(1)} ms, ` +
            `${(event.completionTokens / seconds).toFixed(0)} tokens/s]\n`,
        );
      }
    }
  } finally {
    await engine.close();
  }
}

/** One line per token: the token (JSON-quoted, so spaces show), its logprob, then its alternatives. */
function logprobTable(entries: (TokenLogprob & { top: TokenLogprob[] })[]): string {
  const lines = entries.map((e) => {
    const top = e.top.map((t) => `${JSON.stringify(t.token)} ${t.logprob.toFixed(4)}`).join("  ");
    return `${JSON.stringify(e.token).padEnd(14)} ${e.logprob.toFixed(4).padStart(9)}${top ? `  | ${top}` : ""}`;
  });
  return `\nlogprobs (token, logprob | top alternatives):\n${lines.join("\n")}\n`;
}
