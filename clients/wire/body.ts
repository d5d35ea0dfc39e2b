/**
 * A byte stream read whole, under a limit: refused as soon as it passes `limit` (the rest is never
 * read), so nothing larger than the limit is ever held. Both sides use it: a node reading an upload,
 * a client reading a download into the port's Uint8Array.
 */

export async function readCapped(body: ReadableStream<Uint8Array> | null, limit: number, tooLarge: () => Error): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body?.getReader();
  if (!reader) return new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/** What a client reads of one download at most by default (an adapter's two files, each under the catalog's 64 MiB upload limit). */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 128 << 20;
