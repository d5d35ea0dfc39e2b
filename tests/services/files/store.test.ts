import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PlaneError } from "../../../ports/errors.ts";
import { createFileService } from "../../../services/files/index.ts";
import { openDatabase } from "../../../services/store/db.ts";
import { files as filesTable, tenants } from "../../../services/store/schema.ts";
import { trainingJsonl } from "../../ports/files.contract.ts";
import { openTestFiles, wordTokenizer, type TestFiles } from "./helpers.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
let t: TestFiles;
beforeEach(async () => {
  t = await openTestFiles();
});
afterEach(async () => {
  await t.close();
});
const upload = (tenantId = "t_acme", text = trainingJsonl(2), filename = "train.jsonl") => t.files.upload({ tenantId, filename, purpose: "fine-tune", bytes: bytes(text) });

describe("StoreFiles", () => {
  it("keeps one row and one blob per file, and removes both on delete", async () => {
    const file = await upload();
    expect(file.id).toMatch(/^file_[0-9a-z]{24}$/);
    expect(readdirSync(t.dir)).toEqual([file.id]);
    expect(t.store.db.select().from(filesTable).all()).toHaveLength(1);
    await t.files.delete("t_acme", file.id);
    expect(readdirSync(t.dir)).toEqual([]);
    expect(t.store.db.select().from(filesTable).all()).toEqual([]);
  });

  it("writes nothing for a refused file, and removes the blob when the row cannot be inserted", async () => {
    await expect(upload("t_acme", "nope\n")).rejects.toBeInstanceOf(PlaneError);
    await expect(upload("t_nobody")).rejects.toThrow(/FOREIGN KEY/);
    expect(readdirSync(t.dir)).toEqual([]);
    expect(t.store.db.select().from(filesTable).all()).toEqual([]);
  });

  it("lists newest first by creation time, ties broken by id, across pages", async () => {
    const made = [];
    for (let i = 0; i < 4; i++) made.push(await upload("t_acme", trainingJsonl(1, i), `f${i}.jsonl`));
    const names = (await t.files.list("t_acme")).data.map((f) => f.filename);
    expect(names).toEqual(["f3.jsonl", "f2.jsonl", "f1.jsonl", "f0.jsonl"]);
    const page = await t.files.list("t_acme", { order: "asc", after: made[1].id });
    expect(page.data.map((f) => f.filename)).toEqual(["f2.jsonl", "f3.jsonl"]);
    expect(page.hasMore).toBe(false);
  });

  it("trims the file name and refuses an empty one", async () => {
    expect((await upload("t_acme", trainingJsonl(1), "  data.jsonl ")).filename).toBe("data.jsonl");
    await expect(upload("t_acme", trainingJsonl(1), "  ")).rejects.toMatchObject({ kind: "invalid_request", code: "invalid_filename" });
  });
});

describe("createFileService after a crash", () => {
  it("sweeps a half-written put and bytes whose row never got written, and keeps the rest", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switchyard-files-crash-"));
    const store = openDatabase(":memory:");
    try {
      await store.db.insert(tenants).values({ id: "t_acme", name: "acme" });
      const limits = { maxBytes: 1 << 20, maxLines: 1000 };
      const first = await createFileService({ db: store.db, dataDir, tokenizer: wordTokenizer(), limits });
      const kept = await first.upload({ tenantId: "t_acme", filename: "a.jsonl", purpose: "fine-tune", bytes: bytes(trainingJsonl(1)) });
      writeFileSync(join(dataDir, "files", ".tmp-file_half"), "{");
      writeFileSync(join(dataDir, "files", "file_orphan"), trainingJsonl(1));

      const second = await createFileService({ db: store.db, dataDir, tokenizer: wordTokenizer(), limits });
      expect(readdirSync(join(dataDir, "files"))).toEqual([kept.id]);
      expect(new TextDecoder().decode(await second.content("t_acme", kept.id))).toBe(trainingJsonl(1));
      expect(existsSync(join(dataDir, "files", "file_orphan"))).toBe(false);
    } finally {
      store.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
