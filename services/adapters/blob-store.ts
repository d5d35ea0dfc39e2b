/**
 * Where an adapter's two files live, by adapter id. The catalog owns the rows; this owns the bytes.
 * Local disk today (`<dir>/<id>/`), object storage later: callers only put, read, remove and list.
 *
 * Invariants of the local store: a put is written to `<dir>/.tmp-<id>/` and renamed into place, so
 * `<dir>/<id>/` either holds both files or does not exist; a crash mid-put leaves only a temporary
 * folder, which `open` sweeps. Reading a missing adapter is AdapterError not_found.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AdapterFiles } from "./archive.ts";
import { AdapterError } from "./errors.ts";

export const CONFIG_FILE = "adapter_config.json";
export const MODEL_FILE = "adapter_model.safetensors";

export interface AdapterBlobs {
  /** Stores the files under `id`, all or nothing. */
  put(id: string, files: AdapterFiles): Promise<void>;
  /** The stored files; not_found when there are none. */
  read(id: string): Promise<AdapterFiles>;
  /** Removes the files; a missing id is fine. */
  remove(id: string): Promise<void>;
  /** Every id with stored files. */
  list(): Promise<string[]>;
  /** Where the files of `id` are, as the catalog shows it (its `root`). */
  locate(id: string): string;
}

const TEMP_PREFIX = ".tmp-";

/** Adapters on local disk, one folder per id. */
export class LocalAdapterBlobs implements AdapterBlobs {
  /** Reads and writes `dir` as it is (a reader beside a running server: no sweep). */
  constructor(
    private readonly dir: string,
    /** What `locate` answers (default the folder); the node shows it relative to the data directory. */
    private readonly shownAs: (id: string) => string = (id) => join(dir, id),
  ) {}

  /** Opens (creating) `dir` as its one writer and removes the temporary folders a crash left behind. */
  static async open(dir: string, shownAs?: (id: string) => string): Promise<LocalAdapterBlobs> {
    await mkdir(dir, { recursive: true });
    for (const entry of await readdir(dir)) {
      if (entry.startsWith(TEMP_PREFIX)) await rm(join(dir, entry), { recursive: true, force: true });
    }
    return new LocalAdapterBlobs(dir, shownAs);
  }

  dirOf(id: string): string {
    return join(this.dir, id);
  }

  locate(id: string): string {
    return this.shownAs(id);
  }

  async put(id: string, files: AdapterFiles): Promise<void> {
    const temp = join(this.dir, `${TEMP_PREFIX}${id}`);
    try {
      await mkdir(temp, { recursive: true });
      await writeFile(join(temp, CONFIG_FILE), files.config);
      await writeFile(join(temp, MODEL_FILE), files.model);
      await rename(temp, this.dirOf(id));
    } catch (e) {
      await rm(temp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Reads without blocking the event loop. */
  async read(id: string): Promise<AdapterFiles> {
    const dir = this.dirOf(id);
    try {
      const [config, model] = await Promise.all([readFile(join(dir, CONFIG_FILE)), readFile(join(dir, MODEL_FILE))]);
      return { config: asBytes(config), model: asBytes(model) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new AdapterError("not_found", `adapter "${id}" not found`);
      throw e;
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }

  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((entry) => !entry.startsWith(TEMP_PREFIX));
  }
}

const asBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
