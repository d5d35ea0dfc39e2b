/**
 * Hostile archives and documents over HTTP, against the real server in a child process: bombs,
 * traversal, links, lying sizes, forged safetensors headers. Each is refused with a 4xx, leaves no
 * row and no file behind, and the server keeps answering.
 */
import { deflateSync } from "node:zlib";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import tar from "tar-stream";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tarGzOf, utf8, zipOf } from "../helpers/adapters.ts";
import { childTenant, peakRssBytes, removeDataDir, spawnServer, type ServerChild } from "../helpers/server-child.ts";
import { adapterFiles, adapterForm, adapterZip } from "./fixtures.ts";
import { Tally } from "./tally.ts";

const MB = 1 << 20;
const good = adapterFiles(9);
let s: ServerChild;
let key: string;
const tally = new Tally();

beforeAll(async () => {
  s = await spawnServer({ env: { SWITCHYARD_MAX_UPLOAD_BODY: "4mb", SWITCHYARD_REQUESTS_PER_MINUTE: "0" } });
  key = (await childTenant(s, "attacks")).key;
});

afterAll(async () => {
  console.log(tally.table("hostile archives and documents"));
  await s.stop();
  removeDataDir(s.dataDir);
});

async function rawTar(entries: Array<{ header: Partial<tar.Header> & { name: string }; data?: Uint8Array }>): Promise<Uint8Array> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.data) pack.entry(e.header, Buffer.from(e.data));
    else pack.entry(e.header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** A tar whose only header declares `declared` bytes (octal, up to 8 GB) but carries 512. */
function tarWithLyingSize(declared: number): Uint8Array {
  const block = new Uint8Array(1024 + 512);
  const put = (at: number, text: string) => block.set(utf8(text), at);
  put(0, "adapter_model.safetensors");
  put(100, "0000644\0");
  put(124, `${declared.toString(8).padStart(11, "0")}\0`);
  put(136, "00000000000\0");
  put(156, "0");
  put(257, "ustar\u000000");
  block.fill(0x20, 148, 156);
  const sum = block.subarray(0, 512).reduce((a, b) => a + b, 0);
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return block;
}

/** A zip whose central directory lies about the entry's compressed size. */
function zipWithLyingSize(): Uint8Array {
  const zip = zipSync({ "adapter_config.json": good.config, "adapter_model.safetensors": good.model }, { level: 0 });
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  for (let at = zip.byteLength - 22; at >= 0; at--) {
    if (view.getUint32(at, true) !== 0x02014b50) continue;
    view.setUint32(at + 20, 0xfffffff0, true);
    view.setUint32(at + 24, 0xfffffff0, true);
  }
  return zip;
}

/** A safetensors file whose 8-byte header length is `declared`, followed by `header` bytes. */
function safetensorsWithHeader(declared: bigint, header: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + header.byteLength);
  new DataView(out.buffer).setBigUint64(0, declared, true);
  out.set(header, 8);
  return out;
}

const cases: Array<[string, () => Promise<{ body: FormData | Uint8Array; type?: string; path?: string }>, number[]]> = [
  ["zip bomb (16 MB of zeros in 16 KB)", async () => ({ body: adapterForm("bomb", zipSync({ "adapter_config.json": good.config, "adapter_model.safetensors": new Uint8Array(16 * MB) }, { level: 9 })) }), [413]],
  ["tar.gz bomb (16 MB)", async () => ({ body: adapterForm("bomb", await tarGzOf([{ name: "adapter_config.json", data: good.config }, { name: "adapter_model.safetensors", data: new Uint8Array(16 * MB) }]), "a.tar.gz") }), [413]],
  ["zip bomb as the raw body", async () => ({ body: zipSync({ "adapter_model.safetensors": new Uint8Array(16 * MB) }, { level: 9 }), type: "application/zip", path: "/v1/adapters?name=bomb" }), [413]],
  ["gzip of garbage", async () => ({ body: gzipSync(utf8("not a tar at all ".repeat(100))), type: "application/gzip", path: "/v1/adapters?name=g" }), [400]],
  ["upload over the limit", async () => ({ body: adapterForm("big", new Uint8Array(5 * MB).fill(7)) }), [413]],
  ["zip path traversal", async () => ({ body: adapterForm("t", zipOf({ "../../etc/adapter_config.json": good.config, "adapter_model.safetensors": good.model })) }), [400]],
  ["zip absolute path", async () => ({ body: adapterForm("t", zipOf({ "/tmp/adapter_config.json": good.config, "adapter_model.safetensors": good.model })) }), [400]],
  ["zip backslash traversal", async () => ({ body: adapterForm("t", zipOf({ "..\\..\\adapter_config.json": good.config, "adapter_model.safetensors": good.model })) }), [400]],
  ["tar.gz traversal", async () => ({ body: adapterForm("t", await tarGzOf([{ name: "x/../../adapter_config.json", data: good.config }, { name: "adapter_model.safetensors", data: good.model }]), "a.tar.gz") }), [400]],
  ["tar.gz symlink", async () => ({ body: adapterForm("t", await tarGzOf([{ name: "adapter_config.json", data: good.config }, { name: "adapter_model.safetensors", type: "symlink", linkname: "/etc/shadow" }]), "a.tar.gz") }), [400]],
  ["tar hard link", async () => ({ body: adapterForm("t", await rawTar([{ header: { name: "adapter_config.json", size: good.config.byteLength }, data: good.config }, { header: { name: "adapter_model.safetensors", type: "link", linkname: "/etc/passwd" } }]), "a.tar") }), [400]],
  ["tar device entry", async () => ({ body: adapterForm("t", await rawTar([{ header: { name: "adapter_model.safetensors", type: "character-device", devmajor: 1, devminor: 3 } }]), "a.tar") }), [400]],
  ["zip symlink", async () => ({ body: adapterForm("t", zipSync({ "adapter_config.json": good.config, "adapter_model.safetensors": [utf8("/etc/shadow"), { os: 3, attrs: (0o120777 << 16) >>> 0 }] })) }), [400]],
  ["zip with lying sizes", async () => ({ body: adapterForm("t", zipWithLyingSize()) }), [400]],
  ["tar declaring 8 GB", async () => ({ body: tarWithLyingSize(8 * 1024 * MB - 1), type: "application/x-tar", path: "/v1/adapters?name=t" }), [400, 413]],
  ["tar.gz declaring 8 GB", async () => ({ body: gzipSync(tarWithLyingSize(8 * 1024 * MB - 1)), type: "application/gzip", path: "/v1/adapters?name=t" }), [400, 413]],
  ["truncated zip", async () => ({ body: adapterForm("t", adapterZip(9).subarray(0, 3000)) }), [400]],
  ["zip in a zip", async () => ({ body: adapterForm("t", zipOf({ "inner.zip": adapterZip(9) })) }), [400]],
  ["duplicate entries", async () => ({ body: adapterForm("t", await tarGzOf([{ name: "adapter_config.json", data: good.config }, { name: "adapter_model.safetensors", data: good.model }, { name: "./adapter_model.safetensors", data: utf8("x") }]), "a.tar.gz") }), [400]],
  ["pickle weights", async () => ({ body: adapterForm("t", zipOf({ "adapter_config.json": good.config, "adapter_model.bin": utf8("\x80\x04pickle") })) }), [400]],
  ["safetensors header length 2^60", async () => ({ body: pairForm(safetensorsWithHeader(1n << 60n, utf8("{}"))) }), [400, 413]],
  ["safetensors header longer than the file", async () => ({ body: pairForm(safetensorsWithHeader(4096n, utf8('{"a":'))) }), [400, 413]],
  ["safetensors 3 MB header of one string", async () => ({ body: pairForm(safetensorsWithHeader(BigInt(3 * MB), utf8(JSON.stringify({ __metadata__: { x: "y".repeat(3 * MB - 40) } }).padEnd(3 * MB)))) }), [400, 413]],
  ["safetensors 3 MB header of 60k tensors", async () => ({ body: pairForm(manyTensorsHeader(60_000)) }), [400, 413]],
  ["safetensors offsets out of bounds", async () => ({ body: pairForm(safetensorsWithHeader(80n, utf8(JSON.stringify({ t: { dtype: "F32", shape: [1e9], data_offsets: [0, 4e9] } }).padEnd(80)))) }), [400]],
  ["config that is not JSON", async () => ({ body: pairForm(good.model, utf8("{nope")) }), [400]],
  ["config nested 100k deep", async () => ({ body: pairForm(good.model, utf8("[".repeat(100_000) + "]".repeat(100_000))) }), [400]],
];

function pairForm(model: Uint8Array, config: Uint8Array = good.config): FormData {
  const form = new FormData();
  form.append("name", "pair");
  form.append("adapter_config", new Blob([new Uint8Array(config)]), "adapter_config.json");
  form.append("adapter_model", new Blob([new Uint8Array(model)]), "adapter_model.safetensors");
  return form;
}

function manyTensorsHeader(n: number): Uint8Array {
  const header: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) header[`base_model.model.model.layers.${i}.self_attn.q_proj.lora_A.weight`] = { dtype: "F32", shape: [1, 1], data_offsets: [0, 4] };
  const json = utf8(JSON.stringify(header));
  const out = safetensorsWithHeader(BigInt(json.byteLength), json);
  const withData = new Uint8Array(out.byteLength + 4);
  withData.set(out);
  return withData;
}

function leftovers(): string[] {
  return readdirSync(join(s.dataDir, "adapters"));
}

describe("hostile adapter archives over HTTP", () => {
  for (const [name, make, statuses] of cases) {
    it(`${name}: refused (${statuses.join(" or ")}), nothing stored, server alive`, async () => {
      const { body, type, path = "/v1/adapters" } = await make();
      const res = await s.call("POST", path, { key, body, headers: type ? { "content-type": type } : {}, timeoutMs: 30_000 });
      tally.record(`adapter: ${name}`, res.status);
      const answer = await res.json();
      expect(statuses, JSON.stringify(answer)).toContain(res.status);
      expect(answer.error.message.length).toBeGreaterThan(0);
      expect(leftovers()).toEqual([]);
      expect((await (await s.call("GET", "/v1/adapters", { key })).json()).data).toEqual([]);
      expect((await s.call("GET", "/health")).status).toBe(200);
    });
  }

  it("a good archive after all of them is still accepted", async () => {
    const res = await s.call("POST", "/v1/adapters", { key, body: adapterForm("survivor", adapterZip(9)) });
    expect(res.status).toBe(201);
    expect(leftovers()).toEqual([(await res.json()).id]);
  });
});

/** A one-page PDF whose content stream inflates to `inflated` bytes of spaces (the text layer is one word). */
function pdfBomb(inflated: number): Uint8Array {
  const content = Buffer.alloc(inflated, 0x20);
  content.write("BT /F1 12 Tf 72 720 Td (boom) Tj ET", 0);
  const stream = deflateSync(content, { level: 9 });
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let length = 0;
  const push = (b: Buffer | string) => {
    const buf = typeof b === "string" ? Buffer.from(b, "latin1") : b;
    parts.push(buf);
    length += buf.byteLength;
  };
  push("%PDF-1.4\n");
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
  ];
  objects.forEach((o, i) => {
    offsets.push(length);
    push(`${i + 1} 0 obj\n${o}\nendobj\n`);
  });
  offsets.push(length);
  push(`4 0 obj\n<< /Length ${stream.byteLength} /Filter /FlateDecode >>\nstream\n`);
  push(stream);
  push("\nendstream\nendobj\n");
  offsets.push(length);
  push("5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n");
  const xref = length;
  push(`xref\n0 6\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("")}`);
  push(`trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  return new Uint8Array(Buffer.concat(parts));
}

describe("hostile documents over HTTP", () => {
  it("an archive or binary sent as a document is refused as an unknown format", async () => {
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(zipSync({ "a.txt": new Uint8Array(8 * MB) }, { level: 9 }))], { type: "application/zip" }), "bomb.zip");
    const res = await s.call("POST", "/v1/knowledge/documents", { key, body: form });
    tally.record("document: zip bomb", res.status);
    expect(res.status).toBe(415);
  });

  it("a traversal file name is only a title: nothing is written outside the data dir", async () => {
    const form = new FormData();
    form.append("file", new Blob(["Traversal is refused politely."], { type: "text/plain" }), "../../../../tmp/evil.txt");
    const res = await s.call("POST", "/v1/knowledge/documents", { key, body: form });
    tally.record("document: traversal name", res.status);
    expect(res.status).toBe(201);
    const doc = await res.json();
    expect(doc.title).toBe("evil.txt");
    expect(readdirSync(join(s.dataDir, "documents"))).toEqual([]);
  });

  // Last: on a build without a bound on PDF inflation it keeps the server busy.
  it("a PDF whose stream inflates to 256 MB is refused without inflating it all: no 5xx, no hang, bounded memory", async () => {
    const bomb = pdfBomb(256 * MB);
    const peakBefore = peakRssBytes(s.pid);
    expect(bomb.byteLength).toBeLessThan(MB);
    const form = new FormData();
    form.append("file", new Blob([bomb], { type: "application/pdf" }), "bomb.pdf");
    const res = await s.call("POST", "/v1/knowledge/documents", { key, body: form, timeoutMs: 45_000 });
    tally.record("document: pdf inflation bomb", res.status);
    const text = await res.text();
    expect(res.status, text).toBeLessThan(500);
    expect(s.alive()).toBe(true);
    expect((await s.call("GET", "/health", { timeoutMs: 45_000 })).status).toBe(200);
    // Holding the inflated stream would take 256 MB at least; a bounded parser stops far below.
    expect(peakRssBytes(s.pid) - peakBefore).toBeLessThan(128 * MB);
  }, 120_000);
});
