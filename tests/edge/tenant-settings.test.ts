/** The edge resolves what the knowledge plane obeys on upload from the tenant's stored settings and limits. */
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, ingestPolicy } from "../../edge/tenant-settings.ts";

describe("ingestPolicy", () => {
  it("gives the default chunking and leaves the limits to the plane when the tenant set none", () => {
    expect(ingestPolicy({ settings: {}, limits: {} })).toEqual({
      chunkSize: DEFAULT_SETTINGS.chunkSize,
      chunkOverlap: DEFAULT_SETTINGS.chunkOverlap,
      maxDocuments: undefined,
      maxDocumentBytes: undefined,
    });
  });

  it("takes the tenant's chunking and document limits, ignoring other keys", () => {
    const policy = ingestPolicy({
      settings: { chunkSize: 64, chunkOverlap: 0, systemPrompt: "Hi" },
      limits: { maxDocuments: 3, maxDocumentBytes: 1000, requestsPerMinute: 5 },
    });
    expect(policy).toEqual({ chunkSize: 64, chunkOverlap: 0, maxDocuments: 3, maxDocumentBytes: 1000 });
  });

  it("treats a stored null (from before resets) as unset", () => {
    expect(ingestPolicy({ settings: { chunkSize: null }, limits: { maxDocuments: null } })).toMatchObject({ chunkSize: 256, maxDocuments: undefined });
  });
});
