/**
 * The files port's contract, for every implementation: the in-process store, and the HTTP client of a
 * control node. `make` gives a fresh, empty files plane where the tenants CONTRACT_TENANTS exist, with
 * the limits CONTRACT_LIMITS, counting tokens with a model whose context is at most CONTRACT_CONTEXT
 * tokens and where a word is at least one token (stories260k, or a stand-in). A plane shared by the
 * suite (one node process) names instead two tenants no test has used, and its own limits.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { FileObject, Files } from "../../ports/files.ts";
import { refused } from "../helpers/refused.ts";

export const CONTRACT_TENANTS = ["t_acme", "t_globex"] as const;
export const CONTRACT_LIMITS = { maxBytes: 64 * 1024, maxLines: 200 };
export const CONTRACT_CONTEXT = 512;

export interface FilesUnderTest {
  files: Files;
  /** A shared plane: this test's two tenants (they need not exist yet). */
  tenants?: [string, string];
  /** Its limits, when not CONTRACT_LIMITS. */
  limits?: typeof CONTRACT_LIMITS;
  close(): Promise<void>;
}
const encoder = new TextEncoder();

/** A JSONL file of `n` question-and-answer examples. */
export function trainingJsonl(n: number, seed = 0): string {
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ messages: [{ role: "system", content: "You answer briefly." }, { role: "user", content: `What is ${i + seed} plus one?` }, { role: "assistant", content: `${i + seed + 1}.` }] }),
  );
  return lines.join("\n") + "\n";
}

export function describeFilesContract(name: string, make: () => Promise<FilesUnderTest>): void {
  describe(`files contract: ${name}`, () => {
    let subject: FilesUnderTest;
    let files: Files;
    let ACME: string = CONTRACT_TENANTS[0];
    let GLOBEX: string = CONTRACT_TENANTS[1];
    let limits = CONTRACT_LIMITS;
    const upload = (tenantId: string, text: string, filename = "train.jsonl") => files.upload({ tenantId, filename, purpose: "fine-tune", bytes: encoder.encode(text) });
    const ids = (list: FileObject[]) => list.map((f) => f.id);

    beforeEach(async () => {
      subject = await make();
      files = subject.files;
      [ACME, GLOBEX] = subject.tenants ?? CONTRACT_TENANTS;
      limits = subject.limits ?? CONTRACT_LIMITS;
    });
    afterEach(async () => {
      await subject.close();
    });

    it("stores a valid training file, describes it, and gives its bytes back unchanged", async () => {
      const text = trainingJsonl(3);
      const file = await upload(ACME, text);
      expect(file).toMatchObject({ tenantId: ACME, filename: "train.jsonl", purpose: "fine-tune", bytes: encoder.encode(text).byteLength, examples: 3 });
      expect(file.tokens).toBeGreaterThan(3 * 8);
      expect(file.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(Math.abs(file.createdAt - Date.now())).toBeLessThan(60_000);
      expect(await files.get(ACME, file.id)).toEqual(file);
      expect(new TextDecoder().decode(await files.content(ACME, file.id))).toBe(text);
    });

    it("refuses a file with bad lines whole, naming every line and its reason, and stores nothing", async () => {
      const good = JSON.stringify({ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }] });
      const text = [good, "{not json", "[1, 2]", JSON.stringify({ messages: [{ role: "user", content: "no answer" }] }), good, JSON.stringify({ messages: [{ role: "tool", content: "x" }, { role: "assistant", content: "y" }] })].join("\n");
      const error = await refused(upload(ACME, text), "invalid_request");
      expect(error.code).toBe("invalid_training_file");
      expect(error.message).toMatch(/4 invalid lines/);
      expect(error.message).toMatch(/line 2: not valid JSON/);
      expect(error.message).toMatch(/line 3: not a JSON object/);
      expect(error.message).toMatch(/line 4: no assistant message/);
      expect(error.message).toMatch(/line 6: message 1 has unknown role "tool"/);
      expect(error.message).not.toMatch(/line [15]:/);
      expect((await files.list(ACME)).data).toEqual([]);
    });

    it("refuses an example longer than the model's context after the chat template, by line", async () => {
      const long = JSON.stringify({ messages: [{ role: "user", content: "word ".repeat(CONTRACT_CONTEXT + 10) }, { role: "assistant", content: "ok" }] });
      const error = await refused(upload(ACME, `${trainingJsonl(1)}${long}\n`), "invalid_request");
      expect(error.message).toMatch(/line 2: \d+ tokens after the chat template, longer than the model's context of \d+/);
      expect((await files.list(ACME)).data).toEqual([]);
    });

    it("refuses a file over the byte or line limit as too_large, and one with no examples as invalid", async () => {
      expect((await refused(upload(ACME, "x".repeat(limits.maxBytes + 1)), "too_large")).message).toMatch(/bytes/);
      expect((await refused(upload(ACME, "\n".repeat(limits.maxLines + 1)), "too_large")).message).toMatch(/lines/);
      expect((await refused(upload(ACME, "\n\n"), "invalid_request")).message).toMatch(/no examples/);
      expect((await files.list(ACME)).data).toEqual([]);
    });

    it("lists newest first, pages with after and limit, and in ascending order when asked", async () => {
      for (let i = 0; i < 5; i++) await upload(ACME, trainingJsonl(1, i), `f${i}.jsonl`);
      const all = (await files.list(ACME)).data;
      expect(all).toHaveLength(5);
      const times = all.map((f) => f.createdAt);
      expect(times).toEqual([...times].sort((x, y) => y - x));

      const first = await files.list(ACME, { limit: 2 });
      expect(first).toMatchObject({ hasMore: true });
      const second = await files.list(ACME, { limit: 2, after: first.data[1].id });
      const third = await files.list(ACME, { limit: 2, after: second.data[1].id });
      expect(third.hasMore).toBe(false);
      expect([...ids(first.data), ...ids(second.data), ...ids(third.data)]).toEqual(ids(all));
      expect(ids((await files.list(ACME, { order: "asc" })).data)).toEqual(ids(all).reverse());
      expect((await files.list(ACME, { purpose: "fine-tune" })).data).toHaveLength(5);

      expect((await refused(files.list(ACME, { after: "file_nope" }), "invalid_request")).param).toBe("after");
    });

    it("keeps tenants apart: another tenant's file is not_found everywhere", async () => {
      const mine = await upload(ACME, trainingJsonl(2));
      expect((await files.list(GLOBEX)).data).toEqual([]);
      await refused(files.get(GLOBEX, mine.id), "not_found");
      await refused(files.content(GLOBEX, mine.id), "not_found");
      await refused(files.delete(GLOBEX, mine.id), "not_found");
      await refused(files.list(GLOBEX, { after: mine.id }), "invalid_request");
      expect(await files.get(ACME, mine.id)).toEqual(mine);
    });

    it("deletes a file and its bytes; a second delete is not_found", async () => {
      const keep = await upload(ACME, trainingJsonl(1));
      const gone = await upload(ACME, trainingJsonl(2));
      expect(await files.delete(ACME, gone.id)).toEqual(gone);
      await refused(files.get(ACME, gone.id), "not_found");
      await refused(files.content(ACME, gone.id), "not_found");
      await refused(files.delete(ACME, gone.id), "not_found");
      expect(ids((await files.list(ACME)).data)).toEqual([keep.id]);
    });

    it("refuses a purpose it does not store", async () => {
      const error = await refused(files.upload({ tenantId: ACME, filename: "b.jsonl", purpose: "batch" as "fine-tune", bytes: encoder.encode(trainingJsonl(1)) }), "invalid_request");
      expect(error).toMatchObject({ code: "unsupported_purpose", param: "purpose" });
    });
  });
}
