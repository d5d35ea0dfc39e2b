/**
 * The one serialisation of a PlaneError between a plane node and its HTTP client: the node answers
 * `{ "error": { kind, message, code, param, details } }` with the kind's status, and the client
 * rebuilds the same PlaneError from it. Streams carry the same object as an `error` line.
 */
import { PlaneError, type PlaneErrorKind } from "../../ports/errors.ts";

export interface WireError {
  kind: PlaneErrorKind;
  message: string;
  code: string | null;
  param: string | null;
  details: Record<string, number | string>;
}

const KINDS: readonly PlaneErrorKind[] = [
  "invalid_request", "context_length", "not_found", "forbidden", "too_large",
  "unsupported_media_type", "overloaded", "busy", "unavailable", "plane_unavailable",
];

/** The node's status for a kind (what the edge would answer; the client reads the kind, not the status). */
const STATUS: Record<PlaneErrorKind, number> = {
  invalid_request: 400, context_length: 400, not_found: 404, forbidden: 403, too_large: 413,
  unsupported_media_type: 415, overloaded: 429, busy: 503, unavailable: 503, plane_unavailable: 503,
};

export function toWireError(error: PlaneError): WireError {
  return { kind: error.kind, message: error.message, code: error.code, param: error.param, details: error.details };
}

export function wireStatus(kind: PlaneErrorKind): number {
  return STATUS[kind];
}

/** The PlaneError a wire object describes; anything else (a proxy's HTML page) is `unavailable`. */
export function fromWireError(value: unknown, status: number): PlaneError {
  const e = typeof value === "object" && value !== null ? (value as { error?: unknown }).error : undefined;
  if (typeof e === "object" && e !== null) {
    const w = e as Partial<WireError>;
    if (typeof w.kind === "string" && KINDS.includes(w.kind) && typeof w.message === "string") {
      return new PlaneError(w.kind, w.message, {
        code: typeof w.code === "string" ? w.code : undefined,
        param: typeof w.param === "string" ? w.param : undefined,
        details: isDetails(w.details) ? w.details : undefined,
      });
    }
  }
  return new PlaneError("unavailable", `The plane node answered ${status} without a plane error.`, { code: "node_error" });
}

function isDetails(value: unknown): value is Record<string, number | string> {
  return typeof value === "object" && value !== null && Object.values(value).every((v) => typeof v === "number" || typeof v === "string");
}
