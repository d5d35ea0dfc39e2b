import { describe, expect, it } from "vitest";
import { createRandom, createSampler, topIndices, type SamplerParams } from "../../../services/inference/sampler.ts";

const plain: SamplerParams = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
};

function randomLogits(n: number, seed: number, scale = 3): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: n }, () => (random() - 0.5) * 2 * scale);
}

// ---- Plain reference: float64, full sort, written straight from the definitions. ----

function referencePenalize(logits: Float32Array, history: number[], generated: number[], p: SamplerParams): number[] {
  const scores = Array.from(logits);
  for (const t of new Set(history)) scores[t] = scores[t] > 0 ? scores[t] / p.repetitionPenalty : scores[t] * p.repetitionPenalty;
  const counts = new Map<number, number>();
  for (const t of generated) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, c] of counts) scores[t] -= c * p.frequencyPenalty + p.presencePenalty;
  return scores;
}

function referenceDistribution(logits: Float32Array, p: SamplerParams): number[] {
  const scores = referencePenalize(logits, [], [], p);
  const max = Math.max(...scores);
  const weights = scores.map((s) => Math.exp((s - max) / p.temperature));
  const order = weights.map((w, i) => ({ w, i })).sort((a, b) => b.w - a.w || a.i - b.i);
  let kept = p.topK > 0 ? order.slice(0, p.topK) : order;
  if (p.topP < 1) {
    const mass = kept.reduce((s, x) => s + x.w, 0);
    let cumulative = 0;
    const prefix = [];
    for (const x of kept) {
      prefix.push(x);
      cumulative += x.w;
      if (cumulative >= p.topP * mass) break;
    }
    kept = prefix;
  }
  kept = kept.filter((x) => x.w >= p.minP);
  const total = kept.reduce((s, x) => s + x.w, 0);
  const probs = new Array(logits.length).fill(0);
  for (const x of kept) probs[x.i] = x.w / total;
  return probs;
}

function referenceArgmax(values: number[]): number {
  return values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
}

describe("sampler", () => {
  it("selects the top k like a full sort, ties to the lower index", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const values = Array.from(randomLogits(200, seed), (v) => Math.round(v * 4) / 4); // many ties
      const sorted = values.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i).map((x) => x.i);
      for (const k of [1, 7, 64, 200, 500]) expect(topIndices(values, k)).toEqual(sorted.slice(0, k));
    }
  });

  it("reports logprobs as the log-softmax of the raw logits", () => {
    const logits = randomLogits(300, 5);
    const sampler = createSampler({ ...plain, temperature: 0.5, repetitionPenalty: 1.5, logprobs: 5 }, 300);
    const result = sampler.sample(logits, [1, 2, 3]);
    const max = Math.max(...logits);
    const lse = max + Math.log(Array.from(logits).reduce((s, v) => s + Math.exp(v - max), 0));
    expect(result.logprob).toBeCloseTo(logits[result.token] - lse, 5);
    const expectedTop = topIndices(logits, 5);
    expect(result.top.map((t) => t.token)).toEqual(expectedTop);
    result.top.forEach((t) => expect(t.logprob).toBeCloseTo(logits[t.token] - lse, 5));
    expect(createSampler(plain, 300).sample(logits, []).top).toEqual([]);
    // Temperature 1 without penalties reuses the sampling normaliser: same answer.
    const unscaled = createSampler({ ...plain, logprobs: 2, seed: 3 }, 300).sample(logits, []);
    expect(unscaled.logprob).toBeCloseTo(logits[unscaled.token] - lse, 5);
    expect(unscaled.top[0].logprob).toBeCloseTo(logits[expectedTop[0]] - lse, 5);
  });

  it("applies repetition, frequency and presence penalties like the reference, step by step", () => {
    const random = createRandom(99);
    for (let trial = 0; trial < 30; trial++) {
      const vocab = 40;
      const params: SamplerParams = {
        ...plain,
        temperature: 0,
        repetitionPenalty: 1 + random() * 1.5,
        frequencyPenalty: random() * 1.5,
        presencePenalty: random() * 1.5,
      };
      const prompt = Array.from({ length: 8 }, () => Math.floor(random() * vocab));
      const sampler = createSampler(params, vocab);
      const generated: number[] = [];
      for (let step = 0; step < 12; step++) {
        const logits = randomLogits(vocab, trial * 100 + step, 1.5);
        const history = [...prompt, ...generated];
        const expected = referenceArgmax(referencePenalize(logits, history, generated, params));
        expect(sampler.sample(logits, history).token).toBe(expected);
        generated.push(expected);
      }
    }
  });

  it("samples the reference distribution for temperature, top-k, top-p and min-p", () => {
    const logits = randomLogits(20, 3);
    const settings: Partial<SamplerParams>[] = [
      { temperature: 0.7, topK: 5 },
      { temperature: 1.3, topP: 0.8 },
      { temperature: 1, minP: 0.1 },
      { temperature: 0.9, topK: 8, topP: 0.9, minP: 0.05 },
      { temperature: 2 },
    ];
    const draws = 10000;
    for (const [n, setting] of settings.entries()) {
      const params = { ...plain, ...setting, seed: 1234 + n };
      const expected = referenceDistribution(logits, params);
      const sampler = createSampler(params, logits.length);
      const counts = new Array(logits.length).fill(0);
      for (let i = 0; i < draws; i++) counts[sampler.sample(logits, []).token]++;
      counts.forEach((count, token) => {
        const p = expected[token];
        if (p === 0) expect(count, `token ${token} is outside the support`).toBe(0);
        else expect(Math.abs(count / draws - p)).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / draws) + 1e-3);
      });
    }
  });

  it("finds the top-p nucleus of a flat distribution over a large vocabulary", () => {
    const logits = randomLogits(5000, 11, 0.3); // nucleus far larger than the first heap of 64
    const params = { ...plain, topP: 0.5, seed: 8 };
    const expected = referenceDistribution(logits, params);
    const support = new Set(expected.flatMap((p, i) => (p > 0 ? [i] : [])));
    expect(support.size).toBeGreaterThan(1000);
    const sampler = createSampler(params, logits.length);
    for (let i = 0; i < 3000; i++) expect(support.has(sampler.sample(logits, []).token)).toBe(true);
  });

  it("is deterministic for a seed and greedy at temperature 0", () => {
    const logits = randomLogits(100, 21, 1);
    const run = (seed: number) => {
      const sampler = createSampler({ ...plain, temperature: 1.2, topP: 0.95, seed }, 100);
      return Array.from({ length: 50 }, () => sampler.sample(logits, []).token);
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
    const greedy = createSampler({ ...plain, temperature: 0 }, 100);
    expect(greedy.sample(logits, []).token).toBe(referenceArgmax(Array.from(logits)));
  });

  it("computes logprobs only when asked for them", () => {
    const logits = randomLogits(100, 22, 2);
    const lse = Math.log(Array.from(logits).reduce((s, x) => s + Math.exp(x), 0));
    const off = createSampler({ ...plain, temperature: 0 }, 100).sample(logits, []);
    expect(off.logprob).toBeUndefined();
    const chosenOnly = createSampler({ ...plain, temperature: 0, logprobs: 0 }, 100).sample(logits, []);
    expect(chosenOnly.token).toBe(referenceArgmax(Array.from(logits)));
    expect(chosenOnly.logprob).toBeCloseTo(logits[chosenOnly.token] - lse, 5);
    expect(chosenOnly.top).toEqual([]);
  });

  it("rejects invalid parameters and logits of the wrong size", () => {
    expect(() => createSampler({ ...plain, temperature: -1 }, 10)).toThrow(/temperature must be >= 0/);
    expect(() => createSampler({ ...plain, topP: 0 }, 10)).toThrow(/top_p must be in \(0, 1\]/);
    expect(() => createSampler({ ...plain, minP: 2 }, 10)).toThrow(/min_p/);
    expect(() => createSampler(plain, 10).sample(new Float32Array(9), [])).toThrow(/expected 10 logits, got 9/);
  });
});
