/** Newline-delimited JSON over a byte stream: one value per line, both directions. */

const encoder = new TextEncoder();

export function ndjsonLine(value: unknown): Uint8Array {
  return encoder.encode(`${JSON.stringify(value)}\n`);
}

/** The JSON values of a stream's lines, as they arrive. */
export async function* readNdjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim() !== "") yield JSON.parse(line) as unknown;
      }
    }
    if (buffer.trim() !== "") yield JSON.parse(buffer) as unknown;
  } finally {
    reader.releaseLock();
  }
}
