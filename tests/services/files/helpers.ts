import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EncodeRequest, EncodedPrompt, ModelInfo } from "../../../ports/inference.ts";
import { LocalFileBlobs } from "../../../services/files/blob-store.ts";
import { StoreFiles } from "../../../services/files/store.ts";
import type { Tokenizer, TrainingFileLimits } from "../../../services/files/validate.ts";
import { openDatabase, type OpenDatabase } from "../../../services/store/db.ts";
import { tenants } from "../../../services/store/schema.ts";

/** A stand-in for the inference port's encode: each message is `<role>` plus one token per word. */
export function wordTokenizer(contextLength = 512): Tokenizer & { calls: number } {
  const model: ModelInfo = { id: "words", contextLength, vocabSize: 1000 };
  const tokenizer = {
    calls: 0,
    model: async () => model,
    async encode({ candidates, reserve = 1 }: EncodeRequest): Promise<EncodedPrompt> {
      tokenizer.calls++;
      const source = candidates[0]!;
      if (!("messages" in source)) throw new Error("chat candidates only");
      const words = source.messages.flatMap((m) => [`<${m.role}>`, ...m.content.split(/\s+/).filter(Boolean)]);
      const tokens = words.map((_, i) => i);
      return { index: 0, fits: tokens.length + reserve <= contextLength, text: words.join(" "), tokens };
    },
  };
  return tokenizer;
}

export interface TestFiles {
  files: StoreFiles;
  store: OpenDatabase;
  dir: string;
  blobs: LocalFileBlobs;
  tokenizer: ReturnType<typeof wordTokenizer>;
  close(): Promise<void>;
}

/** A StoreFiles on a fresh in-memory database and temp folder; a clock one second on per upload. */
export async function openTestFiles(options: { tenants?: readonly string[]; limits?: TrainingFileLimits; contextLength?: number } = {}): Promise<TestFiles> {
  const store = openDatabase(":memory:");
  for (const id of options.tenants ?? ["t_acme", "t_globex"]) await store.db.insert(tenants).values({ id, name: id });
  const dir = mkdtempSync(join(tmpdir(), "switchyard-files-"));
  const blobs = await LocalFileBlobs.open(dir);
  const tokenizer = wordTokenizer(options.contextLength);
  let clock = Date.now();
  const files = new StoreFiles({ db: store.db, blobs, tokenizer, limits: options.limits ?? { maxBytes: 64 * 1024, maxLines: 200 }, now: () => (clock += 1000) - 10_000 });
  return {
    files,
    store,
    dir,
    blobs,
    tokenizer,
    async close() {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
