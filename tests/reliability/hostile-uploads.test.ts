/** Uploads built to hurt the server (decompression bombs, broken multipart, huge headers), over HTTP. */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomPeftAdapter } from "../../services/adapters/synthetic.ts";
import { parseStarted } from "../../services/retrieval/isolated-parse.ts";
import { STORIES } from "../helpers/adapters.ts";
import { createTenantWithKey, startTestPlatform, type TestPlatform, type TestResponse } from "../helpers/platform.ts";
import { buildFlateBombPdf, buildPdf } from "../services/retrieval/pdf.ts";

const PARSE_LIMIT = 16 * 1024 * 1024;

let p: TestPlatform;
let key: string;
let hostileZip: Uint8Array;

beforeAll(async () => {
  // Built before any request: seconds of idle keep-alive mid-suite would race the server closing the socket.
  hostileZip = millionEntryAdapterZip();
  p = await startTestPlatform({ SWITCHYARD_MAX_PARSE_BYTES: String(PARSE_LIMIT), SWITCHYARD_REQUESTS_PER_MINUTE: "0" });
  ({ key } = await createTenantWithKey(p));
});
afterAll(async () => {
  await p?.stop();
});

const uploadFile = (route: string, field: string, bytes: Uint8Array, name: string) => {
  const form = new FormData();
  form.set(field, new File([new Uint8Array(bytes)], name));
  if (route === "/v1/adapters") form.set("name", "hostile");
  return p.call("POST", route, { key, body: form });
};

async function expectOpenAiError(res: TestResponse, status: number, message: RegExp): Promise<{ param: string | null; code: string | null }> {
  const body = await res.json();
  expect({ status: res.status, message: body.error?.message }).toEqual({ status, message: expect.stringMatching(message) });
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error.type).toBe("invalid_request_error");
  return body.error;
}

/** The next publish on a diagnostics channel. */
function nextPublish(channelName: string): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = () => {
      unsubscribe(channelName, onMessage);
      resolve();
    };
    subscribe(channelName, onMessage);
  });
}

describe("a PDF decompression bomb", () => {
  it("is parsed off the event loop and refused at the decoded-bytes limit, leaving nothing behind", async () => {
    // 64 KB on the wire, 128 MiB inflated: four times the limit, so the worker is busy for a while.
    const bomb = buildFlateBombPdf(128);
    expect(bomb.byteLength).toBeLessThan(256 * 1024);
    const started = nextPublish(parseStarted.name as string);
    let settled = false;
    const upload = uploadFile("/v1/knowledge/documents", "file", bomb, "bomb.pdf").finally(() => (settled = true));

    await started;
    const health = await p.call("GET", "/health");
    expect(health.status).toBe(200);
    expect(settled).toBe(false); // /health answered while the worker was still parsing

    const error = await expectOpenAiError(await upload, 413, new RegExp(`decodes to more than ${PARSE_LIMIT} bytes`));
    expect(error).toMatchObject({ param: "file", code: "payload_too_large" });
    expect((await (await p.call("GET", "/v1/knowledge/documents", { key })).json()).data).toEqual([]);
    expect(readdirSync(join(p.dataDir, "documents"))).toEqual([]);
  });

  it("leaves the parser working: an ordinary PDF is still read, in the worker", async () => {
    const res = await uploadFile("/v1/knowledge/documents", "file", buildPdf([["Quarterly revenue grew."]]), "report.pdf");
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ format: "pdf", status: "ready", chunk_count: 1 });
  });
});

/** Nine ways to break a multipart body; each must be a 400, not a 500. */
const MALFORMED: Array<[what: string, contentType: string, body: string]> = [
  ["no boundary parameter", "multipart/form-data", '--B\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi\r\n--B--\r\n'],
  ["an empty boundary", "multipart/form-data; boundary=", "--\r\n\r\n"],
  ["an empty body", "multipart/form-data; boundary=B", ""],
  ["a different boundary in the body", "multipart/form-data; boundary=B", '--C\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi\r\n--C--\r\n'],
  ["a part cut off before its closing boundary", "multipart/form-data; boundary=B", '--B\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello wor'],
  ["part headers cut off", "multipart/form-data; boundary=B", '--B\r\nContent-Disposition: form-data; name="fi'],
  ["a part without Content-Disposition", "multipart/form-data; boundary=B", "--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B--\r\n"],
  ["a body that is not multipart at all", "multipart/form-data; boundary=B", "just some text, no delimiters"],
  ["only an opening delimiter", "multipart/form-data; boundary=B", "--B"],
];

describe.each(["/v1/knowledge/documents", "/v1/adapters"])("malformed multipart to %s", (route) => {
  it.each(MALFORMED)("400 for %s", async (_what, contentType, body) => {
    const res = await p.call("POST", route, { key, body, headers: { "content-type": contentType } });
    await expectOpenAiError(res, 400, /./);
  });
});

/** An adapter zip whose safetensors header lists a million empty tensors (about 50 MB of header). */
function millionEntryAdapterZip(): Uint8Array {
  const entries = Array.from({ length: 1_000_000 }, (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
  const header = new TextEncoder().encode(`{${entries.join(",")}}`);
  const model = new Uint8Array(8 + header.byteLength);
  new DataView(model.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  model.set(header, 8);
  const { config } = randomPeftAdapter(STORIES, { rank: 4, targets: ["q_proj"] }).files;
  return zipSync({ "adapter_config.json": config, "adapter_model.safetensors": model }, { level: 1 });
}

describe("a safetensors header with a million tiny entries", () => {
  it("is refused by its declared length before it is decoded, naming the limit", async () => {
    expect(hostileZip.byteLength).toBeLessThan(3 * 1024 * 1024);
    const res = await uploadFile("/v1/adapters", "file", hostileZip, "hostile.zip");
    // stories260k has 5 layers: 2 x 7 x 5 = 70 tensors at most.
    const error = await expectOpenAiError(res, 400, /header is \d+ bytes, over the limit of \d+ \(.*at most 2 x 7 targets x 5 layers = 70 tensors\)/);
    expect(error.code).toBe("too_many_tensors");
    expect((await (await p.call("GET", "/v1/adapters", { key })).json()).data).toEqual([]);
  });
});
