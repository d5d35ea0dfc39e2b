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
    return await fetch(`${baseUrl}/v1${path}`, { ...init, headers: { authorization: `Bearer ${key}` } });
  } catch (err) {
    throw new ServerUnreachableError(`cannot reach the switchyard server at ${baseUrl}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
  }
}

/** Sends documents to a running server through its API (`POST /v1/knowledge/documents`) with a tenant key. */
export function httpTarget(baseUrl: string, key: string): IngestTarget {
  const call = async <T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> => {
    const res = await request(baseUrl, path, key, init);
    const body = (await res.json()) as T & { error?: { message: string } };
    if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
    return { status: res.status, body };
  };
  return {
    async upload({ bytes, name }) {
      const form = new FormData();
      form.set("file", new Blob([bytes]), name);
      form.set("title", name);
      const { status, body } = await call<DocumentView>("/knowledge/documents", { method: "POST", body: form });
      return { id: body.id, created: status !== 200 };
    },
    async state(id) {
      const { body } = await call<DocumentView>(`/knowledge/documents/${encodeURIComponent(id)}`);
      return { status: body.status, progress: body.progress, chunkCount: body.chunk_count, warning: body.warning, error: body.error };
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
