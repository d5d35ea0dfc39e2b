import { Writable } from "node:stream";

/** A writable that records what is written, posing as a terminal (`isTTY`) of `columns` or as a pipe. */
export function captureStream(isTTY: boolean, columns = 100) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = columns;
  return { stream, text: () => chunks.join("") };
}
