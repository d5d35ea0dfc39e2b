import type { DocumentState, IngestTarget } from "./ingest-run.ts";
import { ServerUnreachableError } from "./server-api.ts";

export { ServerUnreachableError };

interface DocumentView {
  id: string;
  status: DocumentState["status"];
  progress: number;
  chunk_count: number;
  warning: string | null;
  error: string | null;
}

/** fetch, with a connection failure explained. */
async function request(baseUrl: string, path: string, key: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(`${baseUrl}/v1${path}`, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${key}` } });
  } catch (err) {
    throw new ServerUnreachableError(`cannot reach the switchyard server at ${baseUrl}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
  }
}

interface BatchView {
  data: Array<{ file_index: number; entry: string | null; status: "queued" | "exists" | "refused"; document: DocumentView | null; error: { message: string } | null }>;
}

/** Ids per progress request (the server's limit). */
const PROGRESS_IDS = 1000;

/** Sends documents to a running server through its API (`POST /v1/knowledge/documents/batch`, progress from `/documents/progress`) with a tenant key. */
export function httpTarget(baseUrl: string, key: string): IngestTarget {
  const call = async <T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> => {
    const res = await request(baseUrl, path, key, init);
    const body = (await res.json()) as T & { error?: { message: string } };
    if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
    return { status: res.status, body };
  };
  return {
    async uploadBatch(files) {
      const form = new FormData();
      for (const { bytes, name } of files) form.append("file", new Blob([bytes]), name);
      const { body } = await call<BatchView>("/knowledge/documents/batch", { method: "POST", body: form });
      return body.data.map((d) => ({
        file: d.file_index,
        ...(d.entry === null ? {} : { entry: d.entry }),
        ...(d.document ? { id: d.document.id, created: d.status === "queued" } : { error: d.error?.message ?? "refused" }),
      }));
    },
    async states(ids) {
      const out: DocumentState[] = [];
      for (let i = 0; i < ids.length; i += PROGRESS_IDS) {
        const init = { method: "POST", body: JSON.stringify({ ids: ids.slice(i, i + PROGRESS_IDS) }), headers: { "content-type": "application/json" } };
        const { body } = await call<{ data: DocumentView[] }>("/knowledge/documents/progress", init);
        out.push(...body.data.map((d) => ({ status: d.status, progress: d.progress, chunkCount: d.chunk_count, warning: d.warning, error: d.error })));
      }
      return out;
    },
    wait: () => new Promise((r) => setTimeout(r, 200)),
  };
}

/** The tenant a key belongs to (`GET /v1/tenant`); throws with the server's message when it is refused. */
export async function tenantOfKey(baseUrl: string, key: string): Promise<string> {
  const res = await request(baseUrl, "/tenant", key);
  const body = (await res.json()) as { id?: string; error?: { message: string } };
  if (!res.ok || !body.id) throw new Error(`the server at ${baseUrl} refused the key: ${body.error?.message ?? `HTTP ${res.status}`}`);
  return body.id;
}
