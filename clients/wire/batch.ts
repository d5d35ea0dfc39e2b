/**
 * A batch upload's body on the wire: a 4-byte little-endian length, that many bytes of JSON (the
 * policy and each document's fields with its size), then every document's bytes back to back. The
 * manifest travels in the body, not a header, since a thousand documents' titles would not fit a header.
 */
import type { DocumentUpload, IngestPolicy } from "../../ports/knowledge.ts";

type Fields = Omit<DocumentUpload, "bytes"> & { size: number };
export interface BatchManifest {
  policy: IngestPolicy;
  documents: Fields[];
}

export function encodeBatch(uploads: readonly DocumentUpload[], policy: IngestPolicy): Uint8Array {
  const manifest: BatchManifest = { policy, documents: uploads.map(({ bytes, ...fields }) => ({ ...fields, size: bytes.byteLength })) };
  const json = new TextEncoder().encode(JSON.stringify(manifest));
  const body = new Uint8Array(4 + json.byteLength + uploads.reduce((n, u) => n + u.bytes.byteLength, 0));
  new DataView(body.buffer).setUint32(0, json.byteLength, true);
  body.set(json, 4);
  let at = 4 + json.byteLength;
  for (const u of uploads) {
    body.set(u.bytes, at);
    at += u.bytes.byteLength;
  }
  return body;
}

/** The manifest (unchecked JSON: the node validates it) and each document's bytes; throws on a body that does not add up. */
export function decodeBatch(body: Uint8Array): { manifest: unknown; bytes: (size: number) => Uint8Array } {
  if (body.byteLength < 4) throw new Error("a batch body starts with its manifest's length");
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, true);
  if (4 + length > body.byteLength) throw new Error("the batch manifest is longer than the body");
  const manifest: unknown = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + length)));
  let at = 4 + length;
  return {
    manifest,
    bytes: (size) => {
      if (at + size > body.byteLength) throw new Error("the batch body is shorter than its manifest says");
      const out = body.subarray(at, at + size);
      at += size;
      return out;
    },
  };
}
