import type { GenerateEvent, SamplingParams } from "../../ports/index.ts";
import type { DecoderConfig } from "../../services/model/config.ts";
import { ReferenceDecoder } from "../../services/model/reference.ts";

export function params(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return {
    maxTokens: 40,
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    repetitionPenalty: 1,
    frequencyPenalty: 0,
    presencePenalty: 0,
    stop: [],
    ...overrides,
  };
}

export interface Collected {
  text: string;
  tokens: number[];
  logprobs: number[];
  done?: Extract<GenerateEvent, { type: "done" }>;
}

export async function collect(events: AsyncIterable<GenerateEvent>, onToken?: (n: number) => void): Promise<Collected> {
  const out: Collected = { text: "", tokens: [], logprobs: [] };
  for await (const e of events) {
    if (e.type === "done") out.done = e;
    else if (e.type === "text") {
      out.text += e.text;
      if (e.logprob) {
        out.tokens.push(e.tokenId);
        out.logprobs.push(e.logprob.logprob);
        onToken?.(out.tokens.length);
      }
    }
  }
  return out;
}

/** Greedy tokens of the plain-TypeScript reference forward, stopping at end-of-sequence as the engine does. */
export function greedyReference(config: DecoderConfig, lookup: (name: string) => Float32Array, prompt: number[], steps: number): number[] {
  const ref = new ReferenceDecoder(config, lookup);
  const cache = ref.newCache();
  let logits = ref.forward(cache, prompt).at(-1)!;
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const token = logits.indexOf(Math.max(...logits));
    if (config.eosTokenIds.includes(token)) break;
    out.push(token);
    [logits] = ref.forward(cache, [token]);
  }
  return out;
}

/** The reference forward's logprob of each of `tokens` after `prompt` (teacher-forced), in float64. */
export function referenceLogprobs(config: DecoderConfig, lookup: (name: string) => Float32Array, prompt: number[], tokens: number[]): number[] {
  const ref = new ReferenceDecoder(config, lookup);
  const cache = ref.newCache();
  let logits = ref.forward(cache, prompt).at(-1)!;
  return tokens.map((token) => {
    const max = Math.max(...logits);
    let sum = 0;
    for (const v of logits) sum += Math.exp(v - max);
    const logprob = logits[token]! - max - Math.log(sum);
    [logits] = ref.forward(cache, [token]);
    return logprob;
  });
}
