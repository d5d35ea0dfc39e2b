/** A small JSON value in a header: URI-encoded, so any text travels as ASCII. */

export const encodeHeaderJson = (value: unknown): string => encodeURIComponent(JSON.stringify(value));

/** The value, or undefined when the header is absent or not such JSON. */
export function decodeHeaderJson(value: string | null | undefined): unknown {
  if (value === null || value === undefined) return undefined;
  try {
    return JSON.parse(decodeURIComponent(value)) as unknown;
  } catch {
    return undefined;
  }
}
