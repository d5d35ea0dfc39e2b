import { describe, expect, it } from "vitest";
import { chunkDocument, countWordTokens } from "../../../services/retrieval/chunk.ts";
import { parseMarkdown, parsePlainText } from "../../../services/retrieval/parse.ts";

describe("chunkDocument", () => {
  it("keeps offsets that point at the chunk text and never exceeds the token budget", () => {
    const sentences = Array.from({ length: 40 }, (_, i) => `Sentence number ${i} talks about topic ${i % 7}.`);
    const doc = parsePlainText(`${sentences.slice(0, 20).join(" ")}\n\n${sentences.slice(20).join(" ")}`);
    const chunks = chunkDocument(doc, { maxTokens: 30, overlapTokens: 8 });
    expect(chunks.length).toBeGreaterThan(5);
    chunks.forEach((c, i) => {
      expect(c.position).toBe(i);
      expect(doc.text.slice(c.startOffset, c.endOffset)).toBe(c.text);
      expect(c.tokenCount).toBe(countWordTokens(c.text));
      expect(c.tokenCount).toBeLessThanOrEqual(30);
    });
    // Every sentence lands in some chunk.
    for (const s of sentences) expect(chunks.some((c) => c.text.includes(s))).toBe(true);
  });

  it("repeats trailing sentences of the previous chunk as overlap", () => {
    const doc = parsePlainText("Alpha one two three. Beta one two three. Gamma one two three. Delta one two three.");
    const chunks = chunkDocument(doc, { maxTokens: 10, overlapTokens: 5 });
    expect(chunks.map((c) => c.text)).toEqual([
      "Alpha one two three. Beta one two three.",
      "Beta one two three. Gamma one two three.",
      "Gamma one two three. Delta one two three.",
    ]);
    const none = chunkDocument(doc, { maxTokens: 10, overlapTokens: 0 });
    expect(none.map((c) => c.text)).toEqual(["Alpha one two three. Beta one two three.", "Gamma one two three. Delta one two three."]);
  });

  it("starts a new chunk at every heading and records the heading path", () => {
    const doc = parseMarkdown("# A\n\nShort one.\n\n## B\n\nShort two.\n\n# C\n\nShort three.");
    const chunks = chunkDocument(doc, { maxTokens: 100, overlapTokens: 10 });
    expect(chunks.map((c) => [c.text, c.headingPath])).toEqual([
      ["Short one.", ["A"]],
      ["Short two.", ["A", "B"]],
      ["Short three.", ["C"]],
    ]);
  });

  it("cuts a sentence longer than the budget at token boundaries", () => {
    const words = Array.from({ length: 50 }, (_, i) => `w${i}`).join(" ");
    const chunks = chunkDocument(parsePlainText(words), { maxTokens: 16, overlapTokens: 0 });
    expect(chunks.map((c) => c.tokenCount)).toEqual([16, 16, 16, 2]);
    expect(chunks.map((c) => c.text).join(" ")).toBe(words);
  });

  it("cuts sentences in one pass: a long run of dots is no slower than prose", () => {
    // The lazy sentence regex backtracked cubically here (20,000 dots: 5 s; these: minutes, then the test's timeout).
    const text = `${".".repeat(60_000)}x. Next sentence.`;
    const chunks = chunkDocument(parsePlainText(text), { maxTokens: 1_000_000, overlapTokens: 0 });
    expect(chunks.map((c) => c.text)).toEqual([text]);
  });

  it("rejects an overlap as large as the chunk", () => {
    expect(() => chunkDocument(parsePlainText("x"), { maxTokens: 16, overlapTokens: 16 })).toThrow(/overlapTokens/);
  });
});
