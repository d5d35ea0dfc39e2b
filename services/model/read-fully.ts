import { readSync } from "node:fs";

/** Fills `target` from `fd` at `position`, however many reads that takes; a file that ends first is an error naming `path`. */
export function readFully(fd: number, target: Uint8Array, position: number, path: string): void {
  for (let done = 0; done < target.byteLength; ) {
    const n = readSync(fd, target, done, target.byteLength - done, position + done);
    if (n === 0) throw new Error(`${path}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}
