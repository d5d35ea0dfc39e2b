import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { ftsMatchExpression, keywordTerms, STOP_WORDS } from "../../../services/retrieval/keyword-query.ts";

// The index as migration 0008 makes it, in memory.
const db = new Database(":memory:");
db.exec(`CREATE VIRTUAL TABLE fts USING fts5(title, heading, text, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2');
  INSERT INTO fts(rowid, title, heading, text) VALUES
    (1, 'Pumps', 'Seals', 'Replacing the gaskets of running pumps'),
    (2, 'Café menu', '', 'NEAR the door: coffee AND tea, or NOT'),
    (3, 'Emoji', '', 'rocket launch 🚀 schedules');`);
afterAll(() => db.close());
const match = (query: string) => {
  const expression = ftsMatchExpression(query);
  if (expression === "") return [];
  return db.prepare("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 2, 1.5, 1), rowid").pluck().all(expression) as number[];
};

const HOSTILE = [
  '"unbalanced quote',
  'pumps" OR "',
  "NOT pumps",
  "pumps AND",
  "OR OR OR",
  "NEAR(pumps gaskets, 2)",
  "pump*",
  "*",
  "title:pumps",
  "^pumps",
  "{title heading}: pumps",
  "((pumps)",
  ")(",
  "-pumps +gaskets",
  "🚀🚀🚀",
  "\u0000\u0001 pumps \u202e",
  "'; DROP TABLE fts; --",
  "a".repeat(10_000),
  Array.from({ length: 2000 }, (_, i) => `w${i}`).join(" "),
];

describe("keyword query parsing", () => {
  it.each(HOSTILE)("never fails on hostile text: %j", (query) => {
    expect(() => match(query)).not.toThrow();
  });

  it("treats operators and punctuation as plain words or separators", () => {
    expect(match('"unbalanced quote pumps')).toEqual([1]);
    // NOT and AND are stop words, not operators; NEAR is a word.
    expect(match("NOT pumps")).toEqual([1]);
    expect(match("NEAR")).toEqual([2]);
    expect(match("coffee AND")).toEqual([2]);
    expect(match("title:gaskets")).toEqual([1]);
    expect(match("pump*")).toEqual([1]);
    expect(keywordTerms("NEAR(pumps gaskets, 2)")).toEqual(["near", "pumps", "gaskets", "2"]);
  });

  it("stems through FTS5's porter tokenizer, on the query and the text alike", () => {
    expect(match("replaced gasket")).toEqual([1]);
    expect(match("launching rockets")).toEqual([3]);
  });

  it("matches accents loosely and ignores emoji", () => {
    expect(match("cafe")).toEqual([2]);
    expect(match("🚀 launch")).toEqual([3]);
    expect(ftsMatchExpression("🚀 ✨")).toBe("");
  });

  it("drops stop words unless nothing else is left, and lists each word once", () => {
    expect(keywordTerms("What is the state of the art in pumps and the pumps?")).toEqual(["state", "art", "pumps"]);
    expect(keywordTerms("to be or not to be")).toEqual(["to", "be", "or", "not"]);
    expect(STOP_WORDS.has("the")).toBe(true);
    expect(STOP_WORDS.has("pump")).toBe(false);
  });

  it("bounds the expression: overlong words dropped, at most 256 terms", () => {
    expect(keywordTerms("a".repeat(65) + " pumps")).toEqual(["pumps"]);
    expect(keywordTerms(Array.from({ length: 2000 }, (_, i) => `w${i}`).join(" "))).toHaveLength(256);
  });
});
