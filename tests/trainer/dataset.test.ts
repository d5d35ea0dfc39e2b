/**
 * trainer/dataset.ts: loss masks from the chat template (only assistant tokens, per-message weight 0
 * respected, EOS after a final assistant turn), truncation, left-padded batches with shifted labels,
 * and the seeded shuffle / hold-out.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { createChatTemplate, loadChatTemplate, type ChatTemplate } from "../../services/model/chat-template.ts";
import { loadTokenizer, type TextTokenizer } from "../../services/model/tokenizer.ts";
import type { TrainingMessage } from "../../services/files/training-data.ts";
import { encodeChat, encodeExample, epochOrder, holdOut, makeBatch, type ChatEncoder } from "../../trainer/dataset.ts";
import { findModel } from "../helpers/model-path.ts";

const CHATML = createChatTemplate({
  chat_template:
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
});

describe("trainer dataset", () => {
  let tokenizer: TextTokenizer;
  let fallback: ChatTemplate;
  let encoder: ChatEncoder;
  beforeAll(async () => {
    const dir = findModel("stories260k");
    tokenizer = await loadTokenizer(dir);
    fallback = await loadChatTemplate(dir);
    encoder = { tokenizer, template: fallback, eosTokenId: 2 };
  });
  /** The decoded runs of consecutive weighted tokens. */
  const weightedRuns = (ids: number[], weights: number[]) => {
    const runs: number[][] = [];
    weights.forEach((w, t) => {
      if (w === 0) return;
      if (t === 0 || weights[t - 1] === 0) runs.push([]);
      runs.at(-1)!.push(ids[t]!);
    });
    return runs;
  };

  it("weights only the assistant's tokens (and the EOS after the last turn) with the fallback template", () => {
    expect(fallback.source).toBe("fallback");
    const messages: TrainingMessage[] = [
      { role: "system", content: "Be kind." },
      { role: "user", content: "What is the name of the red dog?" },
      { role: "assistant", content: "The red dog is Bob." },
    ];
    const { ids, weights } = encodeChat(messages, encoder);
    expect(ids[0]).toBe(1); // BOS, as serving encodes a fallback prompt
    expect(ids.at(-1)).toBe(2);
    const runs = weightedRuns(ids, weights);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.at(-1)).toBe(2);
    expect(tokenizer.decode(runs[0]!.slice(0, -1)).trim()).toBe("The red dog is Bob.");
    // The prompt part is exactly what serving would encode for the generation prompt.
    const prompt = tokenizer.encode(fallback.render(messages.slice(0, 2), { addGenerationPrompt: true }));
    expect(ids.slice(0, prompt.length)).toEqual(prompt);
    expect(weights.slice(0, prompt.length).every((w) => w === 0)).toBe(true);
    expect(weights.slice(prompt.length).every((w) => w === 1)).toBe(true);
  });

  it("respects weight 0 on an assistant turn and counts later turns (fallback and a ChatML-style template)", () => {
    const messages: TrainingMessage[] = [
      { role: "user", content: "Hi there." },
      { role: "assistant", content: "Go away now.", weight: 0 },
      { role: "user", content: "Please help me." },
      { role: "assistant", content: "Yes, I can help." },
      { role: "user", content: "Thank you." },
      { role: "assistant", content: "You are welcome.", weight: 1 },
    ];
    for (const template of [fallback, CHATML]) {
      const { ids, weights } = encodeChat(messages, { tokenizer, template, eosTokenId: 2 });
      const texts = weightedRuns(ids, weights).map((run) => tokenizer.decode(run.filter((id) => id !== 2)));
      expect(texts, template.source).toHaveLength(2);
      expect(texts[0]).toContain("Yes, I can help.");
      expect(texts[1]).toContain("You are welcome.");
      for (const t of texts) for (const other of ["Go away", "Hi there", "Please help", "Thank you", "user"]) expect(t).not.toContain(other);
      if (template === CHATML) expect(texts[0]).toMatch(/^Yes, I can help\.<\|im_end\|>/);
    }
  });

  it("truncates to maxLength, and drops an example whose assistant tokens are all cut off", () => {
    const example = { line: 1, messages: [{ role: "user", content: "Tell me a story about a dog." }, { role: "assistant", content: "Once upon a time there was a dog." }] } as const;
    const full = encodeExample({ ...example, messages: [...example.messages] }, encoder, 512)!;
    expect(full.truncated).toBe(false);
    const cut = encodeExample({ ...example, messages: [...example.messages] }, encoder, full.ids.length - 3)!;
    expect(cut.truncated).toBe(true);
    expect(cut.ids).toEqual(full.ids.slice(0, -3));
    expect(cut.weights).toEqual(full.weights.slice(0, -3));
    const promptLength = full.weights.indexOf(1);
    expect(encodeExample({ ...example, messages: [...example.messages] }, encoder, promptLength)).toBeUndefined();
  });

  it("left-pads batches: attention mask, positions from the first real token, labels shifted by one, weights 0 on padding", () => {
    const a = { ids: [1, 10, 11, 12, 13, 2], weights: [0, 0, 0, 1, 1, 1], truncated: false };
    const b = { ids: [1, 20, 21, 2], weights: [0, 0, 1, 1], truncated: false };
    const batch = makeBatch([a, b], 0);
    expect([batch.batch, batch.seq]).toEqual([2, 5]);
    const row = <T>(x: ArrayLike<T>, r: number) => Array.from(x).slice(r * 5, r * 5 + 5).map(Number);
    expect(row(batch.inputIds, 0)).toEqual([1, 10, 11, 12, 13]);
    expect(row(batch.labels, 0)).toEqual([10, 11, 12, 13, 2]);
    expect(row(batch.lossWeights, 0)).toEqual([0, 0, 1, 1, 1]);
    expect(row(batch.positionIds, 0)).toEqual([0, 1, 2, 3, 4]);
    expect(row(batch.attentionMask, 0)).toEqual([1, 1, 1, 1, 1]);
    expect(row(batch.inputIds, 1)).toEqual([0, 0, 1, 20, 21]);
    expect(row(batch.labels, 1)).toEqual([0, 0, 20, 21, 2]);
    expect(row(batch.lossWeights, 1)).toEqual([0, 0, 0, 1, 1]);
    expect(row(batch.positionIds, 1)).toEqual([0, 0, 0, 1, 2]);
    expect(row(batch.attentionMask, 1)).toEqual([0, 0, 1, 1, 1]);
    expect(batch.tokens).toBe(5 + 3);
    expect(batch.items).toBe(5);
  });

  it("shuffles per epoch from the seed alone and holds out 10% (at least one)", () => {
    const order = epochOrder(20, 7, 0);
    expect([...order].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(epochOrder(20, 7, 0)).toEqual(order);
    expect(epochOrder(20, 7, 1)).not.toEqual(order);
    expect(epochOrder(20, 8, 0)).not.toEqual(order);
    const items = Array.from({ length: 25 }, (_, i) => i);
    const split = holdOut(items, 3);
    expect(split.validation).toHaveLength(3);
    expect([...split.training, ...split.validation].sort((x, y) => x - y)).toEqual(items);
    expect(holdOut(items, 3)).toEqual(split);
    expect(holdOut([1, 2, 3], 3).validation).toHaveLength(1);
    expect(() => holdOut([1], 3)).toThrow(/at least 2/);
  });
});
