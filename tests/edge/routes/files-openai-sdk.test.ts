/** The official `openai` client's Files API against the running server (stories260k counts the tokens), and the upload body limit. */
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../../helpers/platform.ts";
import { trainingJsonl } from "../../ports/files.contract.ts";

let p: TestPlatform;
let client: OpenAI;
let other: OpenAI;
const BODY_LIMIT = 64 * 1024;

beforeAll(async () => {
  p = await startTestPlatform({ SWITCHYARD_MAX_UPLOAD_BODY: String(BODY_LIMIT), SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: (await createTenantWithKey(p, "files-sdk")).key, maxRetries: 0 });
  other = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: (await createTenantWithKey(p, "files-other")).key, maxRetries: 0 });
});
afterAll(async () => {
  await p.stop();
});

const jsonl = (text: string, name = "train.jsonl") => toFile(Buffer.from(text), name);

describe("openai.files against the server", () => {
  it("creates, retrieves, lists, reads and deletes a training file unchanged", async () => {
    const text = trainingJsonl(4);
    const created = await client.files.create({ file: await jsonl(text), purpose: "fine-tune" });
    expect(created).toMatchObject({ object: "file", purpose: "fine-tune", filename: "train.jsonl", bytes: Buffer.byteLength(text), status: "processed" });
    const counts = created as unknown as { example_count: number; token_count: number };
    expect(counts.example_count).toBe(4);
    expect(counts.token_count).toBeGreaterThan(4 * 10);

    expect(await client.files.retrieve(created.id)).toEqual(created);
    expect(await (await client.files.content(created.id)).text()).toBe(text);

    const second = await client.files.create({ file: await jsonl(trainingJsonl(1), "b.jsonl"), purpose: "fine-tune" });
    const seen: string[] = [];
    for await (const file of client.files.list({ limit: 1 })) seen.push(file.id);
    expect(seen.sort()).toEqual([created.id, second.id].sort());
    expect((await client.files.list({ purpose: "fine-tune" })).data).toHaveLength(2);

    expect(await client.files.delete(second.id)).toEqual({ id: second.id, object: "file", deleted: true });
    await expect(client.files.retrieve(second.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("surfaces a refused file as a 400 whose message lists the bad lines", async () => {
    const bad = `${trainingJsonl(1)}not json\n${JSON.stringify({ messages: [{ role: "assistant", content: "word ".repeat(2000) }] })}\n`;
    const error = await client.files.create({ file: await jsonl(bad), purpose: "fine-tune" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const message = (error as InstanceType<typeof OpenAI.BadRequestError>).message;
    expect(message).toMatch(/line 2: not valid JSON/);
    expect(message).toMatch(/line 3: \d+ tokens after the chat template, longer than the model's context of 512/);
    await expect(client.files.create({ file: await jsonl(trainingJsonl(1)), purpose: "batch" })).rejects.toThrow(/'batch' is not supported here/);
  });

  it("hides one tenant's files from another (404)", async () => {
    const mine = await client.files.create({ file: await jsonl(trainingJsonl(1)), purpose: "fine-tune" });
    await expect(other.files.retrieve(mine.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(other.files.content(mine.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(other.files.delete(mine.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await other.files.list()).data).toEqual([]);
  });

  it("answers 413 for an upload body over the limit", async () => {
    const error = await client.files.create({ file: await jsonl("x".repeat(BODY_LIMIT + 1)), purpose: "fine-tune" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
  });
});
