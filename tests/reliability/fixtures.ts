/** Objects the reliability suites create through the API of a child server: adapters and documents. */
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { STORIES, zipOf } from "../helpers/adapters.ts";
import { ADMIN_KEY } from "../helpers/platform.ts";
import type { ServerChild } from "../helpers/server-child.ts";

export const adapterFiles = (seed = 1) => randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj", "v_proj"], seed }).files;

export function adapterZip(seed = 1): Uint8Array {
  const files = adapterFiles(seed);
  return zipOf({ "adapter_config.json": files.config, "adapter_model.safetensors": files.model });
}

export function adapterForm(name: string, archive: Uint8Array, fileName = "adapter.zip", extra: Record<string, string> = {}): FormData {
  const form = new FormData();
  form.append("name", name);
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  form.append("file", new Blob([new Uint8Array(archive)]), fileName);
  return form;
}

/** Uploads a valid adapter as `key`'s tenant (or public with the admin key); returns its API object. */
export async function uploadAdapter(s: ServerChild, key: string, name: string, seed = 1): Promise<{ id: string; name: string; version: number }> {
  const isAdmin = key === ADMIN_KEY;
  const path = isAdmin ? "/v1/admin/adapters" : "/v1/adapters";
  const res = await s.call("POST", path, { key, body: adapterForm(name, adapterZip(seed), "adapter.zip", isAdmin ? { public: "true" } : {}) });
  if (res.status !== 201) throw new Error(`adapter upload answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** Uploads a small text document, ingested before the answer; returns its API object. */
export async function uploadText(s: ServerChild, key: string, title: string, text: string, metadata: Record<string, string> = {}): Promise<{ id: string; status: string }> {
  const res = await s.call("POST", "/v1/knowledge/documents", { key, json: { title, text, metadata } });
  if (res.status !== 201) throw new Error(`document upload answered ${res.status}: ${await res.text()}`);
  return res.json();
}
