/** The files routes over StoreFiles (word-count tokenizer), behind a stand-in for auth (tenant from `x-tenant`) and the real error renderer. */
import type { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppEnv } from "../../../edge/env.ts";
import { fileRoutes } from "../../../edge/routes/files.ts";
import { specErrors } from "../../helpers/openai-spec.ts";
import { trainingJsonl } from "../../ports/files.contract.ts";
import { openTestFiles, type TestFiles } from "../../services/files/helpers.ts";
import { tenantApp } from "../../helpers/tenant-app.ts";

let t: TestFiles;
let app: Hono<AppEnv>;

beforeEach(async () => {
  t = await openTestFiles({ limits: { maxBytes: 64 * 1024, maxLines: 200 } });
  app = tenantApp("/v1/files", fileRoutes(t.files));
});
afterEach(async () => {
  await t.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const call = async (method: string, path: string, tenant = "t_acme", init: RequestInit = {}) => {
  const res = await app.request(`/v1/files${path}`, { method, ...init, headers: { "x-tenant": tenant, ...init.headers } });
  return { status: res.status, headers: res.headers, text: await res.clone().text(), json: (await res.json().catch(() => null)) as Json };
};
const uploadForm = (text: string, fields: Record<string, string> = { purpose: "fine-tune" }, filename = "train.jsonl") => {
  const form = new FormData();
  form.set("file", new File([text], filename, { type: "application/jsonl" }));
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return form;
};
const upload = (text: string, fields?: Record<string, string>, tenant = "t_acme") => call("POST", "", tenant, { body: uploadForm(text, fields) });

describe("POST /v1/files", () => {
  it("stores a training file and answers OpenAI's file object, with its example and token counts", async () => {
    const res = await upload(trainingJsonl(3));
    expect(res.status).toBe(200);
    expect(specErrors("OpenAIFile", res.json)).toEqual([]);
    expect(res.json).toMatchObject({ object: "file", filename: "train.jsonl", purpose: "fine-tune", status: "processed", bytes: trainingJsonl(3).length, example_count: 3 });
    expect(res.json.token_count).toBeGreaterThan(0);
    expect(res.json.id).toMatch(/^file_/);
  });

  it("refuses a file with bad lines: 400 listing each line, nothing stored", async () => {
    const res = await upload(`${trainingJsonl(1)}{oops\n${JSON.stringify({ messages: [{ role: "user", content: "q" }] })}\n`);
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_training_file", param: "file" });
    expect(res.json.error.message).toMatch(/2 invalid lines[^]*line 2: not valid JSON[^]*line 3: no assistant message/);
    expect((await call("GET", "")).json.data).toEqual([]);
  });

  it("says which purposes it does not support, and refuses ones OpenAI does not know", async () => {
    const batch = await upload(trainingJsonl(1), { purpose: "batch" });
    expect(batch.status).toBe(400);
    expect(batch.json.error).toMatchObject({ code: "unsupported_purpose", param: "purpose" });
    expect(batch.json.error.message).toMatch(/'batch' is not supported here: only 'fine-tune'/);
    const bogus = await upload(trainingJsonl(1), { purpose: "training" });
    expect(bogus.json.error).toMatchObject({ code: "invalid_value", param: "purpose" });
    expect(bogus.json.error.message).toMatch(/expected one of assistants, batch, fine-tune/);
    expect((await upload(trainingJsonl(1), {})).json.error).toMatchObject({ code: "missing_field", param: "purpose" });
  });

  it("refuses a form without a file, an unknown field, and a body that is not multipart", async () => {
    const noFile = new FormData();
    noFile.set("purpose", "fine-tune");
    expect((await call("POST", "", "t_acme", { body: noFile })).json.error).toMatchObject({ code: "missing_field", param: "file" });
    expect((await upload(trainingJsonl(1), { purpose: "fine-tune", "expires_after[seconds]": "3600" })).json.error).toMatchObject({ code: "unknown_field" });
    const json = await call("POST", "", "t_acme", { body: "{}", headers: { "content-type": "application/json" } });
    expect(json.status).toBe(415);
  });

  it("answers 413 for a file over the per-file byte or line limit", async () => {
    const big = await upload("x".repeat(64 * 1024 + 1));
    expect(big.status).toBe(413);
    expect(big.json.error).toMatchObject({ code: "file_too_large", param: "file" });
    const long = await upload("\n".repeat(201));
    expect(long.status).toBe(413);
    expect(long.json.error).toMatchObject({ code: "too_many_lines" });
    expect(long.json.error.message).toMatch(/201 lines, above the limit of 200/);
  });
});

describe("GET, content and DELETE", () => {
  it("lists the caller's files in OpenAI's list shape with cursor paging and a purpose filter", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await upload(trainingJsonl(1, i))).json.id);
    await upload(trainingJsonl(1), undefined, "t_globex");
    const all = await call("GET", "");
    expect(all.status).toBe(200);
    expect(specErrors("ListFilesResponse", all.json)).toEqual([]);
    expect(all.json).toMatchObject({ object: "list", first_id: ids[2], last_id: ids[0], has_more: false });
    expect(all.json.data.map((f: Json) => f.id)).toEqual([...ids].reverse());

    const page = await call("GET", "?limit=2");
    expect(page.json).toMatchObject({ has_more: true, first_id: ids[2], last_id: ids[1] });
    const rest = await call("GET", `?limit=2&after=${ids[1]}`);
    expect(rest.json).toMatchObject({ has_more: false, data: [{ id: ids[0] }] });
    expect((await call("GET", "?order=asc&limit=1")).json.data[0].id).toBe(ids[0]);
    expect((await call("GET", "?purpose=fine-tune")).json.data).toHaveLength(3);
    expect((await call("GET", "?purpose=batch")).json).toEqual({ object: "list", data: [], first_id: null, last_id: null, has_more: false });
    expect((await call("GET", "?limit=0")).status).toBe(400);
    expect((await call("GET", "?after=file_nope")).json.error).toMatchObject({ code: "invalid_cursor", param: "after" });
  });

  it("gets one file, its bytes as uploaded, and deletes it in OpenAI's shape", async () => {
    const text = trainingJsonl(2);
    const { id } = (await upload(text)).json;
    const got = await call("GET", `/${id}`);
    expect(specErrors("OpenAIFile", got.json)).toEqual([]);
    expect(got.json.id).toBe(id);
    const content = await call("GET", `/${id}/content`);
    expect(content.status).toBe(200);
    expect(content.text).toBe(text);
    expect(content.headers.get("content-disposition")).toBe('attachment; filename="train.jsonl"');
    const deleted = await call("DELETE", `/${id}`);
    expect(deleted.json).toEqual({ id, object: "file", deleted: true });
    expect(specErrors("DeleteFileResponse", deleted.json)).toEqual([]);
    expect((await call("GET", `/${id}`)).status).toBe(404);
    expect((await call("DELETE", `/${id}`)).status).toBe(404);
  });

  it("answers 404 for another tenant's file on every route", async () => {
    const { id } = (await upload(trainingJsonl(1))).json;
    for (const [method, path] of [["GET", `/${id}`], ["GET", `/${id}/content`], ["DELETE", `/${id}`]] as const) {
      const res = await call(method, path, "t_globex");
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(res.json.error).toMatchObject({ type: "not_found_error", code: "file_not_found" });
    }
    expect((await call("GET", `/${id}`)).status).toBe(200);
  });
});
