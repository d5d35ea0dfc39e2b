/**
 * Text tokenizer over `@huggingface/tokenizers` (tokenizer.json + tokenizer_config.json), plus the
 * raw bytes each token stands for so that streaming detokenization can work on bytes.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

export interface TextTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The bytes a token contributes to the text (special tokens: their content as UTF-8). */
  tokenBytes(id: number): Uint8Array;
  /** The token's string as the vocabulary spells it (e.g. "▁Once", "<0x0A>", "Ġworld"). */
  tokenString(id: number): string;
  /** Whether decoding drops the space that starts the text (SentencePiece's dummy prefix). */
  stripsLeadingSpace: boolean;
  vocabSize: number;
  bosTokenId?: number;
  eosTokenIds: number[];
  specialTokenIds: Set<number>;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  decoder?: DecoderJson | null;
  model?: { vocab?: Record<string, number> | [string, number][] };
}

interface DecoderJson {
  type: string;
  decoders?: DecoderJson[];
  content?: string;
  start?: number;
  prepend_scheme?: string;
  add_prefix_space?: boolean;
}

type TokenForm = "byte-level" | "metaspace";

const BYTE_FALLBACK = /^<0x([0-9A-Fa-f]{2})>$/;
const METASPACE = "▁";

function flattenDecoders(decoder: DecoderJson | null | undefined): DecoderJson[] {
  if (!decoder) return [];
  return decoder.type === "Sequence" ? (decoder.decoders ?? []).flatMap(flattenDecoders) : [decoder];
}

function stripsLeadingSpace(decoders: DecoderJson[]): boolean {
  return decoders.some(
    (d) =>
      (d.type === "Strip" && d.content === " " && (d.start ?? 0) > 0) ||
      (d.type === "Metaspace" && (d.prepend_scheme ? d.prepend_scheme !== "never" : d.add_prefix_space !== false)),
  );
}

/** GPT-2's byte-to-printable-character table, inverted: character -> byte. */
function byteLevelTable(): Map<string, number> {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table = new Map<string, number>();
  let next = 256;
  for (let b = 0; b < 256; b++) table.set(String.fromCodePoint(printable(b) ? b : next++), b);
  return table;
}

function bytesOfToken(token: string, form: TokenForm, byteLevel: Map<string, number> | undefined): Uint8Array {
  const fallback = BYTE_FALLBACK.exec(token);
  if (fallback) return Uint8Array.of(parseInt(fallback[1], 16));
  if (form === "byte-level" && byteLevel) {
    const chars = [...token];
    if (chars.every((c) => byteLevel.has(c))) return Uint8Array.from(chars, (c) => byteLevel.get(c)!);
  }
  return new TextEncoder().encode(form === "metaspace" ? token.replaceAll(METASPACE, " ") : token);
}

function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}

/** Builds a tokenizer from the parsed tokenizer.json and tokenizer_config.json. */
export function createTokenizer(json: TokenizerJson, config: Record<string, unknown> = {}): TextTokenizer {
  const inner = new Tokenizer(json, config);
  const decoders = flattenDecoders(json.decoder);
  const form: TokenForm = decoders.some((d) => d.type === "ByteLevel") ? "byte-level" : "metaspace";
  const byteLevel = form === "byte-level" ? byteLevelTable() : undefined;
  const added = new Map((json.added_tokens ?? []).map((t) => [t.id, t]));
  const vocab = inner.get_vocab(true);
  let vocabSize = 0; // max id + 1 (a spread into Math.max overflows the stack on 150k vocabularies)
  for (const id of [...vocab.values(), ...added.keys()]) vocabSize = Math.max(vocabSize, id + 1);
  const idOf = (value: unknown) => {
    const content = tokenContent(value);
    return content === undefined ? undefined : inner.token_to_id(content);
  };
  const tokenString = (id: number): string => {
    const token = added.get(id)?.content ?? inner.id_to_token(id);
    if (token === undefined) throw new Error(`token id ${id} is outside the vocabulary (size ${vocabSize})`);
    return token;
  };
  const bytesCache: (Uint8Array | undefined)[] = new Array(vocabSize);
  const tokenBytes = (id: number): Uint8Array => {
    const cached = bytesCache[id];
    if (cached) return cached;
    const token = tokenString(id);
    const bytes = added.has(id) ? new TextEncoder().encode(token) : bytesOfToken(token, form, byteLevel);
    bytesCache[id] = bytes;
    return bytes;
  };
  const eos = idOf(config.eos_token);
  return {
    encode: (text, options) => inner.encode(text, { add_special_tokens: options?.addSpecialTokens ?? true }).ids,
    decode: (ids, options) => inner.decode(ids, { skip_special_tokens: options?.skipSpecialTokens ?? false }),
    tokenBytes,
    tokenString,
    stripsLeadingSpace: stripsLeadingSpace(decoders),
    vocabSize,
    bosTokenId: idOf(config.bos_token),
    eosTokenIds: eos === undefined ? [] : [eos],
    specialTokenIds: new Set([...added.values()].filter((t) => t.special).map((t) => t.id)),
  };
}

/** Loads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a model folder. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const json = await readJson(join(dir, "tokenizer.json"));
  if (json === undefined) throw new Error(`no tokenizer.json in model folder ${dir}`);
  const config = (await readJson(join(dir, "tokenizer_config.json"))) ?? {};
  return createTokenizer(json as TokenizerJson, config as Record<string, unknown>);
}
