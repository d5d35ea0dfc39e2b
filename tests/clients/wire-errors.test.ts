/** The one serialisation of PlaneError between nodes and clients, and the node secret's check. */
import { describe, expect, it } from "vitest";
import { ContextLengthError, PlaneError } from "../../ports/errors.ts";
import { isAuthorized, parseSecrets } from "../../clients/wire/auth.ts";
import { fromWireError, toWireError, wireStatus } from "../../clients/wire/errors.ts";

describe("wire errors", () => {
  it("rebuild a PlaneError with its kind, message, code, param and details", () => {
    const original = new ContextLengthError(500, 20, 512, { param: "messages" });
    const wire = JSON.parse(JSON.stringify({ error: toWireError(original) })) as unknown;
    const rebuilt = fromWireError(wire, wireStatus(original.kind));
    expect(rebuilt).toBeInstanceOf(PlaneError);
    expect({ kind: rebuilt.kind, message: rebuilt.message, code: rebuilt.code, param: rebuilt.param, details: rebuilt.details }).toEqual({
      kind: "context_length", message: original.message, code: "context_length_exceeded", param: "messages", details: { promptTokens: 500, maxTokens: 20, contextLength: 512 },
    });
    expect(wireStatus("overloaded")).toBe(429);
  });

  it("turn a body that is no plane error (a proxy's page, an unknown kind) into unavailable", () => {
    expect(fromWireError("<html>bad gateway</html>", 502)).toMatchObject({ kind: "unavailable", code: "node_error" });
    expect(fromWireError({ error: { kind: "exploded", message: "x" } }, 500)).toMatchObject({ kind: "unavailable" });
  });
});

describe("node secret", () => {
  it("accepts any of a rotated list and nothing else", () => {
    const secrets = parseSecrets(" new-secret-0123456789, old-secret-0123456789 ,");
    expect(secrets).toEqual(["new-secret-0123456789", "old-secret-0123456789"]);
    expect(isAuthorized("Bearer old-secret-0123456789", secrets)).toBe(true);
    expect(isAuthorized("Bearer new-secret-0123456789", secrets)).toBe(true);
    expect(isAuthorized("Bearer new-secret-012345678", secrets)).toBe(false);
    expect(isAuthorized("new-secret-0123456789", secrets)).toBe(false);
    expect(isAuthorized(undefined, secrets)).toBe(false);
    expect(isAuthorized("Bearer anything", [])).toBe(false);
  });
});
