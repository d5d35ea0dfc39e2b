import type { ParsedDocument } from "./parse.ts";

export interface ChunkingOptions {
  /** Most tokens in one chunk. */
  maxTokens: number;
  /** Tokens repeated from the end of the previous chunk of the same section. */
  overlapTokens: number;
}

export interface Chunk {
  text: string;
  position: number;
  headingPath: string[];
  startOffset: number;
  endOffset: number;
  tokenCount: number;
}

export type TokenCounter = (text: string) => number;

const WORD_OR_SYMBOL = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

/** A tokenizer-free estimate close to what subword tokenizers give for English prose. */
export const countWordTokens: TokenCounter = (text) => text.match(WORD_OR_SYMBOL)?.length ?? 0;

interface Segment {
  start: number;
  end: number;
  tokens: number;
  section: string[];
}

/**
 * Packs sentences into chunks of at most `maxTokens`: a chunk never crosses a heading, paragraphs
 * stay together while they fit, sentences are only cut when one alone is too long, and consecutive
 * chunks of a section share about `overlapTokens` of trailing sentences.
 */
export function chunkDocument(doc: ParsedDocument, options: ChunkingOptions, count: TokenCounter = countWordTokens): Chunk[] {
  validateOptions(options);
  const segments = doc.blocks.flatMap((b) =>
    sentenceSpans(doc.text, b.start, b.end).flatMap((s) => splitLongSpan(doc.text, s, options.maxTokens, count, b.headingPath)),
  );
  const groups: Segment[][] = [];
  let current: Segment[] = [];
  let tokens = 0;
  for (const seg of segments) {
    const sameSection = current.length > 0 && sameHeadings(current[0].section, seg.section);
    if (current.length > 0 && (!sameSection || tokens + seg.tokens > options.maxTokens)) {
      groups.push(current);
      current = sameSection ? overlapTail(current, options.overlapTokens, options.maxTokens - seg.tokens) : [];
      tokens = current.reduce((n, s) => n + s.tokens, 0);
    }
    current.push(seg);
    tokens += seg.tokens;
  }
  if (current.length > 0) groups.push(current);
  return groups.map((group, position) => {
    const start = group[0].start;
    const end = group[group.length - 1].end;
    const text = doc.text.slice(start, end);
    return { text, position, headingPath: group[0].section, startOffset: start, endOffset: end, tokenCount: count(text) };
  });
}

function validateOptions({ maxTokens, overlapTokens }: ChunkingOptions): void {
  if (!Number.isInteger(maxTokens) || maxTokens < 8) throw new Error(`chunk maxTokens must be an integer >= 8, got ${maxTokens}`);
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens >= maxTokens) {
    throw new Error(`chunk overlapTokens must be an integer in [0, maxTokens), got ${overlapTokens}`);
  }
}

function sameHeadings(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((h, i) => h === b[i]);
}

/** The last segments of a chunk worth at most `overlap` tokens, and leaving room for `room` more. */
function overlapTail(group: Segment[], overlap: number, room: number): Segment[] {
  const tail: Segment[] = [];
  let tokens = 0;
  for (let i = group.length - 1; i > 0; i--) {
    tokens += group[i].tokens;
    if (tokens > Math.min(overlap, room)) break;
    tail.unshift(group[i]);
  }
  return tail;
}

const TERMINATORS = ".!?";
const CLOSERS = "\"'”’)]";
const isSpace = (ch: string) => ch.trim() === "";

/**
 * Sentence spans inside [start, end): cut after . ! ? (and closing quotes) followed by space, and at
 * line breaks. Scanned by hand in one pass: the equivalent lazy regex backtracks cubically on a long
 * run of dots with no space after it.
 */
function sentenceSpans(text: string, start: number, end: number): Array<{ start: number; end: number }> {
  const spans: Array<{ start: number; end: number }> = [];
  const add = (from: number, to: number) => {
    const piece = text.slice(from, to);
    const leading = piece.length - piece.trimStart().length;
    const trimmed = piece.trim();
    if (trimmed) spans.push({ start: from + leading, end: from + leading + trimmed.length });
  };
  let from = start;
  let i = start;
  while (i < end) {
    if (text[i] === "\n") {
      add(from, i);
      from = ++i;
    } else if (TERMINATORS.includes(text[i]!)) {
      while (i < end && TERMINATORS.includes(text[i]!)) i++;
      while (i < end && CLOSERS.includes(text[i]!)) i++;
      if (i < end && isSpace(text[i]!)) {
        add(from, i);
        from = i;
      }
    } else {
      i++;
    }
  }
  add(from, end);
  return spans;
}

/** Cuts a sentence longer than `maxTokens` at word boundaries (word counts summed: linear, never quadratic). */
function splitLongSpan(
  text: string,
  span: { start: number; end: number },
  maxTokens: number,
  count: TokenCounter,
  section: string[],
): Segment[] {
  const tokens = count(text.slice(span.start, span.end));
  if (tokens <= maxTokens) return [{ ...span, tokens, section }];
  const pieces: Segment[] = [];
  let start = -1;
  let end = -1;
  let used = 0;
  const flush = () => {
    if (start >= 0) pieces.push({ start, end, tokens: count(text.slice(start, end)), section });
    start = -1;
    used = 0;
  };
  for (const m of text.slice(span.start, span.end).matchAll(/\S+/g)) {
    const wordTokens = Math.max(1, count(m[0]));
    if (used > 0 && used + wordTokens > maxTokens) flush();
    if (start < 0) start = span.start + m.index;
    end = span.start + m.index + m[0].length;
    used += wordTokens;
  }
  flush();
  return pieces;
}
