import { describe, expect, it } from "vitest";
import { KnowledgeError } from "../../../services/retrieval/errors.ts";
import { detectFormat, parseDocument } from "../../../services/retrieval/parse.ts";
import { buildPdf } from "./pdf.ts";
import { utf8 } from "./helpers.ts";

const spans = (doc: { text: string; blocks: Array<{ start: number; end: number; headingPath: string[] }> }) =>
  doc.blocks.map((b) => ({ text: doc.text.slice(b.start, b.end), headingPath: b.headingPath }));

describe("detectFormat", () => {
  it("uses the extension, then the media type, then PDF magic bytes", () => {
    expect(detectFormat("notes.MD", "application/octet-stream", utf8("x"))).toBe("markdown");
    expect(detectFormat(undefined, "text/html; charset=utf-8", utf8("x"))).toBe("html");
    expect(detectFormat("upload.bin", undefined, utf8("%PDF-1.4"))).toBe("pdf");
    expect(detectFormat("rows.ndjson", undefined, utf8("{}"))).toBe("jsonl");
  });

  it("refuses unknown formats with unsupported_format", () => {
    const err = (() => {
      try {
        detectFormat("photo.png", "image/png", new Uint8Array([0x89, 0x50]));
      } catch (e) {
        return e as KnowledgeError;
      }
    })();
    expect(err).toBeInstanceOf(KnowledgeError);
    expect(err!.kind).toBe("unsupported_media_type");
    expect(err!.message).toContain('file name "photo.png"');
  });
});

describe("parseDocument", () => {
  it("splits plain text into paragraphs with exact offsets", async () => {
    const doc = await parseDocument("text", utf8("First line.\nstill first.\n\n  Second para.  \n\n\nThird."));
    expect(spans(doc).map((s) => s.text)).toEqual(["First line.\nstill first.", "Second para.", "Third."]);
  });

  it("tracks Markdown heading paths and keeps fenced code whole", async () => {
    const doc = await parseDocument("markdown", utf8("# Guide\n\nIntro.\n\n## Install\n\n```sh\nnpm i\n\n# not a heading\n```\n\n### Linux\nUse apt.\n# Other\nEnd."));
    expect(spans(doc)).toEqual([
      { text: "Intro.", headingPath: ["Guide"] },
      { text: "```sh\nnpm i\n\n# not a heading\n```", headingPath: ["Guide", "Install"] },
      { text: "Use apt.", headingPath: ["Guide", "Install", "Linux"] },
      { text: "End.", headingPath: ["Other"] },
    ]);
  });

  it("extracts HTML body text, drops scripts and styles, decodes entities", async () => {
    const html = `<html><head><title>T</title><style>p{color:red}</style></head><body>
      <h1>Top</h1><p>Fish &amp; <b>chips</b></p><script>alert("x")</script>
      <h2>Menu</h2><ul><li>cod</li><li>haddock</li></ul></body></html>`;
    const doc = await parseDocument("html", utf8(html));
    expect(doc.text).not.toMatch(/alert|color/);
    expect(spans(doc)).toEqual([
      { text: "Fish & chips", headingPath: ["Top"] },
      { text: "cod", headingPath: ["Top", "Menu"] },
      { text: "haddock", headingPath: ["Top", "Menu"] },
    ]);
  });

  it("reads each JSONL record's text under its title", async () => {
    const doc = await parseDocument("jsonl", utf8('{"title":"A","text":"alpha"}\n\n{"id":7,"content":"beta"}\n'));
    expect(spans(doc)).toEqual([
      { text: "alpha", headingPath: ["A"] },
      { text: "beta", headingPath: ["7"] },
    ]);
  });

  it("reads the PDF text layer page by page", async () => {
    const doc = await parseDocument("pdf", buildPdf([["Hello PDF world."], ["Page two (text)."]]));
    expect(doc.warning).toBeUndefined();
    expect(spans(doc)).toEqual([
      { text: "Hello PDF world.", headingPath: ["Page 1"] },
      { text: "Page two (text).", headingPath: ["Page 2"] },
    ]);
  });

  it("accepts a PDF without a text layer with a warning", async () => {
    const doc = await parseDocument("pdf", buildPdf([[]]));
    expect(doc.blocks).toEqual([]);
    expect(doc.warning).toMatch(/no text layer/);
  });

  it.each([
    ["jsonl", '{"text":"ok"}\n{broken', /JSONL line 2: invalid JSON/],
    ["jsonl", '["not", "an object"]', /line 1: each line must be a JSON object/],
    ["jsonl", '{"title":"no body"}', /line 1: record has no string field/],
    ["pdf", "%PDF-1.4 garbage that is not a pdf", /could not read PDF/],
    ["pdf", "plain text", /not a PDF file/],
  ] as const)("rejects bad %s input: %s", async (format, body, message) => {
    await expect(parseDocument(format, utf8(body))).rejects.toThrow(message);
  });

  it("reads Markdown in linear time: long runs of spaces in headings and lines do not backtrack", async () => {
    // Sized so the old regexes ran for minutes (a cubic heading match: 62 s at 5,000 spaces; quadratic
    // trailing-space trimming: 3 s at 40,000) and then failed the test's timeout; now they take milliseconds.
    const short = " ".repeat(8_000);
    const long = " ".repeat(300_000);
    const doc = await parseDocument("markdown", utf8(`# a${short}b\n\nbody${long}end\n\n## Closed ##${short}\nlast${long}`));
    expect(spans(doc)).toEqual([
      { text: `body${long}end`, headingPath: [`a${short}b`] },
      { text: "last", headingPath: [`a${short}b`, "Closed"] },
    ]);
  });

  it("rejects text that is not UTF-8", async () => {
    await expect(parseDocument("text", new Uint8Array([0x66, 0xff, 0xfe, 0x00]))).rejects.toThrow(/not valid UTF-8/);
  });
});
