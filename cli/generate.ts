/**
 * `switchyard generate --model DIR_OR_REPO --prompt TEXT [--max-tokens N --temperature T --seed S
 *  --top-p P --top-k K --stop S --data-dir DIR]`: loads the model, streams the completion to stdout
 * and a one-line summary (tokens, speed) to stderr.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { SamplingParams } from "../edge/ports.ts";
import { createEngine } from "../services/inference/engine.ts";
import { resolveModel, resolveOptionsFromEnv } from "../services/model/resolve.ts";
import { createProgressReporter, downloadProgress } from "./progress.ts";

const USAGE =
  "usage: switchyard generate --model DIR_OR_REPO --prompt TEXT [--max-tokens N] [--temperature T] [--seed S]\n" +
  "                           [--top-p P] [--top-k K] [--stop TEXT]... [--data-dir DIR]\n";

export interface GenerateIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

class UsageError extends Error {}

interface GenerateArgs {
  model?: string;
  prompt: string;
  dataDir: string;
  params: SamplingParams;
}

function number(name: string, value: string | undefined, fallback: number, check: (n: number) => boolean): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`invalid --${name}: ${value}`);
  return n;
}

function parse(argv: string[]): GenerateArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        "max-tokens": { type: "string" },
        temperature: { type: "string" },
        seed: { type: "string" },
        "top-p": { type: "string" },
        "top-k": { type: "string" },
        stop: { type: "string", multiple: true },
        "data-dir": { type: "string" },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.prompt === undefined) throw new UsageError("--prompt is required");
  const seed = values.seed === undefined ? undefined : number("seed", values.seed, 0, (n) => Number.isInteger(n) && n >= 0);
  return {
    model: values.model,
    prompt: values.prompt,
    dataDir: values["data-dir"] ?? process.env.SWITCHYARD_DATA_DIR ?? "./data",
    params: {
      maxTokens: number("max-tokens", values["max-tokens"], 128, (n) => Number.isInteger(n) && n > 0),
      temperature: number("temperature", values.temperature, 0.8, (n) => n >= 0),
      topP: number("top-p", values["top-p"], 1, (n) => n > 0 && n <= 1),
      topK: number("top-k", values["top-k"], 0, (n) => Number.isInteger(n) && n >= 0),
      minP: 0,
      repetitionPenalty: 1,
      frequencyPenalty: 0,
      presencePenalty: 0,
      seed,
      stop: values.stop ?? [],
    },
  };
}

export async function generateCommand(argv: string[], io: GenerateIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: GenerateArgs;
  try {
    args = parse(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`switchyard generate: ${err.message}\n${USAGE}`);
    return 2;
  }
  const progress = createProgressReporter(io.stderr);
  try {
    const modelDir = await resolveModel(args.model, { ...resolveOptionsFromEnv(), onProgress: downloadProgress(progress) });
    progress.stop();
    const engine = await createEngine({ modelDir, cacheDir: join(args.dataDir, "compiled") });
    try {
      // The model's template decides about BOS for chat; a raw prompt gets the tokenizer's specials.
      const promptTokens = engine.tokenize(args.prompt, { addSpecialTokens: true });
      io.stdout.write(args.prompt);
      for await (const event of engine.generate({ promptTokens, params: args.params })) {
        if (event.type === "text") io.stdout.write(event.text);
        else if (event.type === "done") {
          const seconds = event.timings.totalMs / 1000;
          io.stdout.write("\n");
          io.stderr.write(
            `[${event.completionTokens} tokens, ${event.finishReason}, first token ${event.timings.firstTokenMs.toFixed(1)} ms, ` +
              `${(event.completionTokens / seconds).toFixed(0)} tokens/s]\n`,
          );
        }
      }
    } finally {
      await engine.close();
    }
    return 0;
  } catch (err) {
    progress.stop();
    io.stderr.write(`switchyard generate: ${(err as Error).message}\n`);
    return 1;
  }
}
