/**
 * Where an uploaded file's bytes live, by file id; the file service owns the rows. Local disk
 * (`<dir>/<id>`), as the adapter blob store: a put writes `<dir>/.tmp-<id>` and renames it into
 * place, so `<dir>/<id>` is whole or absent; a crash mid-put leaves only the temporary file, which
 * `open` sweeps.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PlaneError } from "../../ports/errors.ts";

export interface FileBlobs {
  /** Stores the bytes under `id`, all or nothing. */
  put(id: string, bytes: Uint8Array): Promise<void>;
  /** The stored bytes; not_found when there are none. */
  read(id: string): Promise<Uint8Array>;
  /** Removes the bytes; a missing id is fine. */
  remove(id: string): Promise<void>;
  /** Every id with stored bytes. */
  list(): Promise<string[]>;
}

const TEMP_PREFIX = ".tmp-";

export class LocalFileBlobs implements FileBlobs {
  private constructor(private readonly dir: string) {}

  /** Reads (and writes) `dir` as it is, without the sweep: a reader beside the running server (the trainer process). */
  static reader(dir: string): LocalFileBlobs {
    return new LocalFileBlobs(dir);
  }

  /** Opens (creating) `dir` as its one writer and removes what a crash mid-put left behind. */
  static async open(dir: string): Promise<LocalFileBlobs> {
    await mkdir(dir, { recursive: true });
    for (const entry of await readdir(dir)) {
      if (entry.startsWith(TEMP_PREFIX)) await rm(join(dir, entry), { force: true });
    }
    return new LocalFileBlobs(dir);
  }

  async put(id: string, bytes: Uint8Array): Promise<void> {
    const temp = join(this.dir, `${TEMP_PREFIX}${id}`);
    try {
      await writeFile(temp, bytes);
      await rename(temp, this.pathOf(id));
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
  }

  async read(id: string): Promise<Uint8Array> {
    try {
      const buffer = await readFile(this.pathOf(id));
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new PlaneError("not_found", `No such file: '${id}'.`);
      throw e;
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.pathOf(id), { force: true });
  }

  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((entry) => !entry.startsWith(TEMP_PREFIX));
  }

  private pathOf(id: string): string {
    if (!/^[\w-]+$/.test(id)) throw new PlaneError("not_found", `No such file: '${id}'.`);
    return join(this.dir, id);
  }
}
