/** An adapter catalog Viewer on the wire: `tenant=ID` or `admin=1` in the query string. */
import type { Viewer } from "../../ports/adapters.ts";

export function viewerQuery(viewer: Viewer): URLSearchParams {
  return new URLSearchParams("admin" in viewer ? { admin: "1" } : { tenant: viewer.tenantId });
}

/** The viewer a request's query names, or undefined when it names none (or both). */
export function parseViewer(query: { tenant?: string; admin?: string }): Viewer | undefined {
  if (query.admin === "1" && query.tenant === undefined) return { admin: true };
  if (query.tenant !== undefined && query.tenant !== "" && query.admin === undefined) return { tenantId: query.tenant };
  return undefined;
}
