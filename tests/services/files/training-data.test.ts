import { describe, expect, it } from "vitest";
import { parseExampleLine, parseTrainingData, splitLines } from "../../../services/files/training-data.ts";

const line = (messages: unknown) => JSON.stringify({ messages });
const qa = [
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello" },
];
const reason = (raw: string) => {
  const checked = parseExampleLine(raw);
  return "error" in checked ? checked.error : "ok";
};

describe("training data lines", () => {
  it("accepts system, user and assistant turns, with weight 0 or 1 on assistant turns", () => {
    const messages = [{ role: "system", content: "Be brief." }, ...qa, { role: "user", content: "Again" }, { role: "assistant", content: "Hello again", weight: 0 }];
    expect(parseExampleLine(line(messages))).toEqual({ ok: messages });
    expect(parseExampleLine(line([...qa.slice(0, 1), { role: "assistant", content: "x", weight: 1 }]))).toEqual({ ok: [qa[0], { role: "assistant", content: "x", weight: 1 }] });
  });

  it("drops fields other than role, content and weight", () => {
    expect(parseExampleLine(line([{ role: "user", content: "Hi", name: "bob" }, qa[1]]))).toEqual({ ok: qa });
  });

  it("gives one reason per bad line", () => {
    expect(reason("{")).toMatch(/^not valid JSON \(/);
    expect(reason("42")).toBe("not a JSON object");
    expect(reason("null")).toBe("not a JSON object");
    expect(reason('{"prompt": "x"}')).toBe('no "messages" array');
    expect(reason('{"messages": "x"}')).toBe('no "messages" array');
    expect(reason(line([]))).toBe('"messages" is empty');
    expect(reason(line(["hi", qa[1]]))).toBe("message 1 is not an object");
    expect(reason(line([qa[0]]))).toBe("no assistant message");
    expect(reason(line([{ role: "tool", content: "x" }, qa[1]]))).toBe('message 1 has unknown role "tool" (expected system, user or assistant)');
    expect(reason(line([{ content: "x" }, qa[1]]))).toBe("message 1 has unknown role null (expected system, user or assistant)");
    expect(reason(line([qa[0], { role: "assistant", content: "  " }]))).toBe("message 2 (assistant) has empty content");
    expect(reason(line([qa[0], { role: "assistant" }]))).toBe("message 2 (assistant) has no string content");
    expect(reason(line([{ role: "user", content: "Hi", weight: 1 }, qa[1]]))).toBe("message 1 (user) has a weight; only assistant messages may");
    expect(reason(line([qa[0], { role: "assistant", content: "x", weight: 0.5 }]))).toBe("message 2 (assistant) has weight 0.5; weight must be 0 or 1");
    expect(reason(line([qa[0], { role: "assistant", content: "x", weight: 0 }]))).toBe("every assistant message has weight 0: nothing to train on");
  });
});

describe("a training file", () => {
  it("numbers lines from 1, skips blank ones, and reads LF and CRLF alike", () => {
    const text = [line(qa), "", "oops", "   ", line(qa)].join("\r\n") + "\r\n";
    const parsed = parseTrainingData(text);
    expect(parsed.examples.map((e) => e.line)).toEqual([1, 5]);
    expect(parsed.errors).toEqual([{ line: 3, reason: expect.stringMatching(/^not valid JSON/) }]);
  });

  it("counts a final newline as the end of the last line, not a new one", () => {
    expect(splitLines("a\nb\n")).toEqual(["a", "b"]);
    expect(splitLines("a\nb")).toEqual(["a", "b"]);
    expect(splitLines("")).toEqual([]);
  });
});
