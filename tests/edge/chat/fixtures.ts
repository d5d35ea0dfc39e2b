import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import type { TestPlatform } from "../../helpers/platform.ts";

/** stories260k's dims, for random adapters. */
export const STORIES_SHAPE = { numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8 };

/** Uploads a random all-linear adapter for the tenant through the real API (`amplitude`: of its weights; tiny: near the base); returns its id. */
export async function uploadRandomAdapter(p: TestPlatform, key: string, name: string, seed: number, amplitude = 0.5): Promise<string> {
  const { files } = randomPeftAdapter(STORIES_SHAPE, { rank: 8, amplitude, seed });
  const form = new FormData();
  form.append("name", name);
  form.append("adapter_config", new Blob([new Uint8Array(files.config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(files.model)]), "adapter_model.safetensors");
  const res = await p.call("POST", "/v1/adapters", { key, body: form });
  if (res.status !== 201) throw new Error(`adapter upload failed: ${res.status} ${await res.text()}`);
  return (await res.json()).id;
}

/** Adds a document to the tenant's knowledge base and waits until it is searchable. */
export async function addDocument(p: TestPlatform, key: string, title: string, text: string): Promise<string> {
  const res = await p.call("POST", "/v1/knowledge/documents", { key, json: { title, text } });
  if (res.status >= 300) throw new Error(`document upload failed: ${res.status} ${await res.text()}`);
  const doc = await res.json();
  // Waits for the state, however long ingestion takes (the test's own timeout bounds it).
  for (let state = doc; ; state = await (await p.call("GET", `/v1/knowledge/documents/${doc.id}`, { key })).json()) {
    if (state.status === "ready") return doc.id;
    if (state.status === "failed") throw new Error(`ingestion failed: ${state.error}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
