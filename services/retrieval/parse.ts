import { TextDecoder } from "node:util";
import { Parser } from "htmlparser2";
import { DOCUMENT_FORMATS, type DocumentFormat } from "../../ports/knowledge.ts";
import { KnowledgeError } from "./errors.ts";

export { DOCUMENT_FORMATS, type DocumentFormat };

/** A run of body text (paragraph, list item, code block, record) inside `ParsedDocument.text`. */
export interface Block {
  start: number;
  end: number;
  headingPath: string[];
}

export interface ParsedDocument {
  /** The extracted text; chunk offsets point into it. */
  text: string;
  blocks: Block[];
  /** Set when the document was accepted but holds no indexable text. */
  warning?: string;
}

const EXTENSIONS: Record<string, DocumentFormat> = {
  txt: "text", text: "text", md: "markdown", markdown: "markdown", html: "html", htm: "html",
  pdf: "pdf", jsonl: "jsonl", ndjson: "jsonl",
};

const MEDIA_TYPES: Record<string, DocumentFormat> = {
  "text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown", "text/html": "html",
  "application/xhtml+xml": "html", "application/pdf": "pdf", "application/jsonl": "jsonl",
  "application/x-ndjson": "jsonl", "application/x-jsonlines": "jsonl", "application/jsonlines": "jsonl",
};

/** Picks the format from the file name, then the media type, then the PDF magic bytes; 415 when none fits. */
export function detectFormat(fileName: string | undefined, mediaType: string | undefined, bytes: Uint8Array): DocumentFormat {
  const ext = fileName?.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1];
  if (ext && EXTENSIONS[ext]) return EXTENSIONS[ext];
  const media = mediaType?.split(";")[0].trim().toLowerCase();
  if (media && MEDIA_TYPES[media]) return MEDIA_TYPES[media];
  if (startsWith(bytes, "%PDF-")) return "pdf";
  const what = [fileName && `file name "${fileName}"`, media && `media type "${media}"`].filter(Boolean).join(", ");
  throw new KnowledgeError(
    "unsupported_media_type",
    `unsupported document format (${what || "no file name or media type"}); supported: .txt, .md, .html, .pdf, .jsonl`,
    "file",
  );
}

export async function parseDocument(format: DocumentFormat, bytes: Uint8Array): Promise<ParsedDocument> {
  switch (format) {
    case "pdf":
      return parsePdf(bytes);
    case "text":
      return parsePlainText(decodeUtf8(bytes));
    case "markdown":
      return parseMarkdown(decodeUtf8(bytes));
    case "html":
      return parseHtml(decodeUtf8(bytes));
    case "jsonl":
      return parseJsonl(decodeUtf8(bytes));
  }
}

function startsWith(bytes: Uint8Array, prefix: string): boolean {
  return bytes.length >= prefix.length && [...prefix].every((ch, i) => bytes[i] === ch.charCodeAt(0));
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new KnowledgeError("invalid_request", "document is not valid UTF-8 text", "file");
  }
}

/** Paragraphs are runs of non-blank lines. */
export function parsePlainText(text: string): ParsedDocument {
  const blocks: Block[] = [];
  for (const m of text.matchAll(/\S(?:[^\n]|\n(?![ \t]*(?:\n|$)))*/g)) {
    blocks.push({ start: m.index, end: m.index + m[0].trimEnd().length, headingPath: [] });
  }
  return { text, blocks };
}

/** ATX headings (`#`..`######`) set the heading path; fenced code blocks stay whole. */
export function parseMarkdown(text: string): ParsedDocument {
  const blocks: Block[] = [];
  const headings: string[] = [];
  let open: Block | null = null;
  let fence: string | null = null;
  const close = () => {
    if (open) blocks.push(open);
    open = null;
  };
  let offset = 0;
  for (const line of text.split("\n")) {
    const lineStart = offset;
    const lineEnd = lineStart + line.trimEnd().length;
    offset += line.length + 1;
    const fenceMark = line.match(/^\s{0,3}(```|~~~)/)?.[1];
    if (fence) {
      open!.end = lineEnd;
      if (fenceMark === fence) (fence = null), close();
      continue;
    }
    if (fenceMark) {
      close();
      fence = fenceMark;
      open = { start: lineStart, end: lineEnd, headingPath: [...headings] };
      continue;
    }
    const heading = atxHeading(line);
    if (heading) {
      close();
      headings.length = Math.min(headings.length, heading.level - 1);
      while (headings.length < heading.level - 1) headings.push("");
      headings.push(heading.text);
      continue;
    }
    if (line.trim() === "") {
      close();
      continue;
    }
    const indent = line.length - line.trimStart().length;
    if (open) open.end = lineEnd;
    else open = { start: lineStart + indent, end: lineEnd, headingPath: headings.filter(Boolean) };
  }
  close();
  for (const b of blocks) b.headingPath = b.headingPath.filter(Boolean);
  return { text, blocks };
}

/**
 * `#`..`######`, whitespace, the title, optional closing `#`s. Trimmed by hand: a regex such as
 * /(.*?)\s*#*\s*$/ backtracks cubically on a long run of spaces, stalling the server on a 5 KB line.
 */
function atxHeading(line: string): { level: number; text: string } | undefined {
  const open = /^\s{0,3}(#{1,6})\s/.exec(line);
  if (!open) return undefined;
  let text = line.slice(open[0].length).trimEnd();
  let end = text.length;
  while (end > 0 && text[end - 1] === "#") end--;
  text = text.slice(0, end).trim();
  return { level: open[1].length, text };
}

const SKIPPED_TAGS = new Set(["script", "style", "noscript", "template", "head", "svg"]);
const BLOCK_TAGS = new Set([
  "p", "div", "li", "ul", "ol", "section", "article", "main", "header", "footer", "nav", "aside", "br", "hr",
  "tr", "td", "th", "table", "pre", "blockquote", "dd", "dt", "dl", "figcaption", "figure", "form", "body",
]);

/** Text of the body with scripts and styles dropped; `h1`..`h6` set the heading path. */
export function parseHtml(html: string): ParsedDocument {
  let text = "";
  const blocks: Block[] = [];
  const headings: string[] = [];
  let skipDepth = 0;
  let buffer = "";
  let headingLevel = 0;
  const append = (piece: string) => {
    text += (text ? "\n\n" : "") + piece;
    return text.length - piece.length;
  };
  const flush = () => {
    const piece = buffer.replace(/\s+/g, " ").trim();
    buffer = "";
    if (!piece) return;
    if (headingLevel) {
      headings.length = headingLevel - 1;
      headings[headingLevel - 1] = piece;
      append(piece);
      return;
    }
    const start = append(piece);
    blocks.push({ start, end: text.length, headingPath: headings.filter((h) => h !== undefined && h !== "") });
  };
  const parser = new Parser(
    {
      onopentag(name) {
        if (SKIPPED_TAGS.has(name)) skipDepth++;
        else if (/^h[1-6]$/.test(name)) flush(), (headingLevel = Number(name[1]));
        else if (BLOCK_TAGS.has(name)) flush();
      },
      ontext(data) {
        if (skipDepth === 0) buffer += data;
      },
      onclosetag(name) {
        if (SKIPPED_TAGS.has(name)) skipDepth = Math.max(0, skipDepth - 1);
        else if (/^h[1-6]$/.test(name)) flush(), (headingLevel = 0);
        else if (BLOCK_TAGS.has(name)) flush();
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  parser.write(html);
  parser.end();
  flush();
  for (let i = 0; i < headings.length; i++) headings[i] ??= "";
  return { text, blocks };
}

/** One record per line; its text comes from `text`, `content` or `body`, its heading from `title` or `id`. */
export function parseJsonl(source: string): ParsedDocument {
  let text = "";
  const blocks: Block[] = [];
  source.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const record = parseRecord(line, i + 1);
    const body = record.text ?? record.content ?? record.body;
    if (typeof body !== "string") {
      throw new KnowledgeError("invalid_request", `JSONL line ${i + 1}: record has no string field "text", "content" or "body"`, "file");
    }
    const label = record.title ?? record.id;
    if (text) text += "\n\n";
    const start = text.length;
    text += body;
    if (body.trim()) blocks.push({ start, end: text.length, headingPath: label === undefined ? [] : [String(label)] });
  });
  return { text, blocks };
}

function parseRecord(line: string, lineNumber: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new KnowledgeError("invalid_request", `JSONL line ${lineNumber}: invalid JSON (${(err as Error).message})`, "file");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new KnowledgeError("invalid_request", `JSONL line ${lineNumber}: each line must be a JSON object`, "file");
  }
  return value as Record<string, unknown>;
}

/** The text layer of every page; each page's paragraphs carry the heading path ["Page N"]. */
async function parsePdf(bytes: Uint8Array): Promise<ParsedDocument> {
  if (!startsWith(bytes, "%PDF-")) throw new KnowledgeError("invalid_request", "not a PDF file (missing %PDF- header)", "file");
  const { extractText } = await import("unpdf");
  let pages: string[];
  try {
    // pdf.js takes ownership of the buffer it is given, so hand it a copy.
    pages = (await extractText(new Uint8Array(bytes), { mergePages: false })).text;
  } catch (err) {
    throw new KnowledgeError("invalid_request", `could not read PDF: ${(err as Error).message}`, "file");
  }
  let text = "";
  const blocks: Block[] = [];
  pages.forEach((page, i) => {
    const parsed = parsePlainText(page);
    const base = text ? text.length + 2 : 0;
    if (text) text += "\n\n";
    text += page;
    for (const b of parsed.blocks) blocks.push({ start: base + b.start, end: base + b.end, headingPath: [`Page ${i + 1}`] });
  });
  const warning = blocks.length === 0 ? "the PDF has no text layer (scanned images?); nothing was indexed" : undefined;
  return { text, blocks, warning };
}
