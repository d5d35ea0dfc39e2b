import { KnowledgeError } from "./errors.ts";

/**
 * Caps the bytes a parse may allocate in Uint8Arrays, in the child process that runs it. Its heap
 * limit bounds the JS heap only, not ArrayBuffers, and every decoded PDF stream (Flate,
 * LZW, run-length, chained filters) grows through `new Uint8Array(size)` inside pdf.js, which exposes
 * no hook for it. So that process's global constructor is wrapped: the size asked for is charged,
 * and once over the budget every further allocation throws, whether or not pdf.js catches the first.
 * Views over existing buffers cost nothing and are not charged.
 */
export function installDecodeBudget(maxBytes: number): { exceeded(): boolean } {
  let charged = 0;
  let over = false;
  const refuse = () => new KnowledgeError("too_large", decodeLimitMessage(maxBytes), "file");
  const charge = (bytes: number) => {
    charged += bytes;
    if (charged > maxBytes) over = true;
    if (over) throw refuse();
  };
  globalThis.Uint8Array = new Proxy(Uint8Array, {
    construct(target, args, newTarget) {
      const [source] = args as [unknown];
      if (typeof source === "number") charge(source);
      else if (isArrayLike(source)) charge(source.length);
      return Reflect.construct(target, args, newTarget) as object;
    },
  });
  return { exceeded: () => over };
}

export function decodeLimitMessage(maxBytes: number): string {
  return `the document decodes to more than ${maxBytes} bytes (compressed streams expand past the parse limit); nothing was indexed`;
}

function isArrayLike(value: unknown): value is { length: number } {
  return typeof value === "object" && value !== null && !(value instanceof ArrayBuffer) && !(value instanceof SharedArrayBuffer)
    && typeof (value as { length?: unknown }).length === "number";
}
