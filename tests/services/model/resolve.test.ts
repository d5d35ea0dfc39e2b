import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDecoderConfig } from "../../../services/model/config.ts";
import { parseRepoSpec, repoCacheDir, type DownloadProgress } from "../../../services/model/hub.ts";
import { DEFAULT_HUB_MODEL, resolveModel, resolveOptionsFromEnv } from "../../../services/model/resolve.ts";
import { openWeights, writeSafetensors } from "../../../services/model/safetensors.ts";
import { findSharedModel } from "../../helpers/model-fixtures.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const storiesDir = findSharedModel("stories260k");
const sharedModels = join(storiesDir, "..");
const storiesFiles = Object.fromEntries(
  ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"].map((f) => [
    f,
    readFileSync(join(storiesDir, f)),
  ]),
);

/** A tiny stand-in for the Hub: resolve URLs, LFS redirects with X-Linked-Etag, Range requests. */
interface FakeHub {
  repos: Map<string, Record<string, Uint8Array>>;
  requests: { method: string; url: string; range?: string; authorization?: string }[];
  /** Cut the connection after this many bytes of the next `times` GETs of a file. */
  cuts: Map<string, { bytes: number; times: number }>;
  /** Report this sha256 in X-Linked-Etag instead of the real one. */
  fakeHashes: Map<string, string>;
  endpoint: string;
  server: Server;
}

const isLfs = (file: string) => file.endsWith(".safetensors");

function startFakeHub(): Promise<FakeHub> {
  const hub = { repos: new Map(), requests: [], cuts: new Map(), fakeHashes: new Map() } as unknown as FakeHub;
  hub.server = createServer((req, res) => {
    const url = decodeURIComponent(req.url ?? "");
    hub.requests.push({ method: req.method ?? "", url, range: req.headers.range, authorization: req.headers.authorization });
    const match = /^\/(cdn\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const content = match ? hub.repos.get(`${match[2]}@${match[3]}`)?.[match[4]] : undefined;
    if (!match || !content) {
      res.writeHead(404).end("Entry not found");
      return;
    }
    const [, cdn, repo, revision, file] = match;
    const hash = hub.fakeHashes.get(file) ?? sha256(content);
    if (isLfs(file) && !cdn) {
      // The Hub answers LFS files with a redirect to its CDN that carries the sha256.
      res.writeHead(302, { location: `/cdn/${repo}/resolve/${revision}/${file}`, "x-linked-etag": `"${hash}"`, "x-linked-size": String(content.byteLength) });
      res.end();
      return;
    }
    // The CDN's ETag is always the true hash, so a fake hash can only arrive through X-Linked-Etag.
    const etag = isLfs(file) ? `"${sha256(content)}"` : `"${sha256(content).slice(0, 40)}"`; // git blob ids for small files
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    if (start >= content.byteLength && range) {
      res.writeHead(416, { "content-range": `bytes */${content.byteLength}` }).end();
      return;
    }
    const body = content.subarray(start);
    const headers = { etag, "content-length": String(body.byteLength), "accept-ranges": "bytes" };
    if (range) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${content.byteLength - 1}/${content.byteLength}` });
    else res.writeHead(200, headers);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const cut = hub.cuts.get(file);
    if (cut && cut.times > 0) {
      cut.times--;
      res.write(body.subarray(0, cut.bytes), () => res.destroy());
      return;
    }
    res.end(body);
  });
  return new Promise((done) =>
    hub.server.listen(0, "127.0.0.1", () => {
      hub.endpoint = `http://127.0.0.1:${(hub.server.address() as AddressInfo).port}`;
      done(hub);
    }),
  );
}

describe("model resolution and Hub download", () => {
  let hub: FakeHub;
  const cacheDir = () => mkdtempSync(join(tmpdir(), "sy-cache-"));

  beforeAll(async () => {
    hub = await startFakeHub();
    hub.repos.set("karpathy/stories260k@main", storiesFiles);
    hub.repos.set(`${DEFAULT_HUB_MODEL}@main`, storiesFiles);
  });
  afterAll(() => new Promise<void>((done) => hub.server.close(() => done())));

  const options = (cache: string, extra: { onProgress?: (p: DownloadProgress) => void; searchPath?: string[] } = {}) => ({
    searchPath: extra.searchPath ?? [],
    cacheDir: cache,
    hubEndpoint: hub.endpoint,
    onProgress: extra.onProgress,
  });

  it("downloads a repo with verified files, reports progress and then serves it from the cache", async () => {
    const cache = cacheDir();
    const progress: DownloadProgress[] = [];
    const folder = await resolveModel("karpathy/stories260k", options(cache, { onProgress: (p) => progress.push(p) }));
    expect(folder).toBe(repoCacheDir(cache, { repo: "karpathy/stories260k", revision: "main" }));
    for (const [file, bytes] of Object.entries(storiesFiles)) expect(sha256(readFileSync(join(folder, file)))).toBe(sha256(bytes));
    expect(readdirSync(folder).some((f) => f.endsWith(".incomplete"))).toBe(false);
    expect((await loadDecoderConfig(folder)).numLayers).toBe(5);
    const weights = progress.filter((p) => p.file === "model.safetensors");
    expect(weights.at(-1)).toEqual({ file: "model.safetensors", received: storiesFiles["model.safetensors"].byteLength, total: storiesFiles["model.safetensors"].byteLength });
    const received = weights.map((p) => p.received);
    expect(received.length).toBeGreaterThan(1); // progress during the download, not only at its end
    expect(received).toEqual([...received].sort((a, b) => a - b));

    const before = hub.requests.length;
    expect(await resolveModel("karpathy/stories260k@main", options(cache))).toBe(folder);
    expect(hub.requests.length).toBe(before);
  });

  it("resumes with a Range request after the server cuts the connection midway", async () => {
    hub.cuts.set("model.safetensors", { bytes: 300_000, times: 1 });
    const folder = await resolveModel("karpathy/stories260k", options(cacheDir()));
    expect(hub.requests.some((r) => r.url.endsWith("model.safetensors") && r.range === "bytes=300000-")).toBe(true);
    expect(sha256(readFileSync(join(folder, "model.safetensors")))).toBe(sha256(storiesFiles["model.safetensors"]));
  });

  it("resumes a partial file left by an earlier run", async () => {
    const cache = cacheDir();
    const folder = repoCacheDir(cache, { repo: "karpathy/stories260k", revision: "main" });
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "model.safetensors.incomplete"), storiesFiles["model.safetensors"].subarray(0, 500_000));
    await resolveModel("karpathy/stories260k", options(cache));
    expect(hub.requests.at(-1)).toMatchObject({ method: "GET", range: "bytes=500000-" });
    expect(sha256(readFileSync(join(folder, "model.safetensors")))).toBe(sha256(storiesFiles["model.safetensors"]));
  });

  it("completes from a partial file that already holds every byte, and restarts one that is too long", async () => {
    const weights = storiesFiles["model.safetensors"];
    for (const partial of [weights, Buffer.concat([weights, Buffer.from("junk")])]) {
      const cache = cacheDir();
      const folder = repoCacheDir(cache, { repo: "karpathy/stories260k", revision: "main" });
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, "model.safetensors.incomplete"), partial);
      await resolveModel("karpathy/stories260k", options(cache));
      expect(sha256(readFileSync(join(folder, "model.safetensors")))).toBe(sha256(weights));
    }
    const gets = hub.requests.filter((r) => r.method === "GET" && r.url.startsWith("/cdn/")).slice(-3);
    expect(gets.map((r) => r.range)).toEqual([`bytes=${weights.byteLength}-`, `bytes=${weights.byteLength + 4}-`, undefined]);
  });

  it("rejects a file whose checksum does not match and leaves nothing half-written", async () => {
    hub.fakeHashes.set("model.safetensors", "0".repeat(64));
    try {
      const cache = cacheDir();
      await expect(resolveModel("karpathy/stories260k", options(cache))).rejects.toThrow(
        /checksum mismatch for model.safetensors of karpathy\/stories260k@main .*expected sha256 0{64}, got [0-9a-f]{64}/,
      );
      const folder = repoCacheDir(cache, { repo: "karpathy/stories260k", revision: "main" });
      expect(readdirSync(folder).filter((f) => f.includes("model.safetensors") || f.startsWith(".switchyard"))).toEqual([]);
    } finally {
      hub.fakeHashes.clear();
    }
  });

  it("sends the access token when one is given", async () => {
    const before = hub.requests.length;
    await resolveModel("karpathy/stories260k", { ...options(cacheDir()), token: "hf_secret" });
    const toHub = hub.requests.slice(before).filter((r) => !r.url.startsWith("/cdn/"));
    expect(toHub.length).toBeGreaterThan(0);
    expect(toHub.map((r) => r.authorization)).toEqual(toHub.map(() => "Bearer hf_secret"));
  });

  it("says clearly when a repo does not exist", async () => {
    await expect(resolveModel("nobody/missing", options(cacheDir()))).rejects.toThrow(/model repo nobody\/missing@main not found at http:\/\/127\.0\.0\.1:\d+/);
  });

  it("downloads sharded weights listed in the index", async () => {
    const a = Float32Array.from({ length: 6 }, (_, i) => i / 7);
    const b = Float32Array.from({ length: 4 }, (_, i) => -i);
    const shards = {
      "model-00001-of-00002.safetensors": writeSafetensors({ a: { dtype: "F32", shape: [2, 3], data: a } }),
      "model-00002-of-00002.safetensors": writeSafetensors({ b: { dtype: "BF16", shape: [4], data: b } }),
    };
    const index = { weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } };
    const { "model.safetensors": _, ...rest } = storiesFiles;
    hub.repos.set("tiny/sharded@v1", { ...rest, ...shards, "model.safetensors.index.json": new TextEncoder().encode(JSON.stringify(index)) });
    const folder = await resolveModel("tiny/sharded@v1", options(cacheDir()));
    const store = await openWeights(folder);
    expect(store.getF32("a")).toEqual(a);
    expect(Array.from(store.getF32("b"))).toEqual([-0, -1, -2, -3]);
    store.close();
  });

  it("resolves folders, names on the search path and the default model", async () => {
    expect(await resolveModel(storiesDir, options(cacheDir()))).toBe(storiesDir);
    expect(await resolveModel("stories260k", options(cacheDir(), { searchPath: ["/nonexistent", sharedModels] }))).toBe(storiesDir);
    // minilm-tokenizer sorts first but has no weights, so the default is stories260k.
    expect(await resolveModel(undefined, options(cacheDir(), { searchPath: [sharedModels] }))).toBe(storiesDir);
    const cache = cacheDir();
    expect(await resolveModel(undefined, options(cache))).toBe(repoCacheDir(cache, parseRepoSpec(DEFAULT_HUB_MODEL)!));
  });

  it("rejects unknown specs and folders that are not models", async () => {
    await expect(resolveModel("no such model", options(cacheDir()))).rejects.toThrow(/unknown model "no such model": not a folder/);
    await expect(resolveModel(join(sharedModels, "minilm-tokenizer"), options(cacheDir()))).rejects.toThrow(/is not a model folder/);
    expect(parseRepoSpec("owner/name@refs/pr/1")).toEqual({ repo: "owner/name", revision: "refs/pr/1" });
    expect(parseRepoSpec("../etc/passwd")).toBeUndefined();
  });

  it("reads its options from the environment", () => {
    const env = { SWITCHYARD_MODEL_PATH: "./a:/b", SWITCHYARD_CACHE_DIR: "cache", HF_ENDPOINT: "https://mirror.example", HF_TOKEN: "hf_x" };
    expect(resolveOptionsFromEnv(env, "/root")).toEqual({
      searchPath: ["/root/a", "/b"],
      cacheDir: "/root/cache",
      hubEndpoint: "https://mirror.example",
      token: "hf_x",
    });
    expect(resolveOptionsFromEnv({}, "/root").searchPath).toEqual(["/root/models", "/shared/models"]);
    expect(resolveOptionsFromEnv({}, "/root").cacheDir).toMatch(/\.cache\/switchyard\/models$/);
  });
});
