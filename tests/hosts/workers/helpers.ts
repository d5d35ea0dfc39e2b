import { SELF } from "cloudflare:test";

export const ADMIN = { authorization: "Bearer workers-admin-key-0123456789", "content-type": "application/json" };

export interface Answer {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: Record<string, any>;
}

/** A request to the worker (hosts/workers/worker.ts) inside workerd. */
export async function call(method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
  const res = await SELF.fetch(`https://edge.test${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Answer["json"] };
}

/** Creates a tenant (with optional limits) and a key for it through the admin API; returns its id and auth headers. */
export async function tenantWithKey(name: string, limits?: Record<string, number>): Promise<{ id: string; auth: Record<string, string> }> {
  const tenant = await call("POST", "/v1/admin/tenants", ADMIN, { name, ...(limits ? { limits } : {}) });
  if (tenant.status !== 201) throw new Error(`tenant creation failed: ${tenant.status} ${JSON.stringify(tenant.json)}`);
  const issued = await call("POST", `/v1/admin/tenants/${tenant.json.id}/keys`, ADMIN, { name: "k" });
  return { id: tenant.json.id, auth: { authorization: `Bearer ${issued.json.key}`, "content-type": "application/json" } };
}
