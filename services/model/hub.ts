/**
 * Downloads a model repository from the Hugging Face Hub (or a mirror) into a local cache:
 * each file goes to `<file>.incomplete`, resumes with a Range request after an interrupted
 * transfer, is checked against the sha256 the Hub reports for LFS files, and is renamed into
 * place only when complete.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";

export interface DownloadProgress {
  file: string;
  received: number;
  total?: number;
}

export interface HubOptions {
  cacheDir: string;
  hubEndpoint?: string;
  onProgress?: (progress: DownloadProgress) => void;
  fetchImpl?: typeof fetch;
  /** A Hugging Face access token (HF_TOKEN) for gated or private repos. */
  token?: string;
  /** Attempts per file before giving up on network errors (each resumes where the last stopped). */
  maxAttempts?: number;
}

export interface RepoSpec {
  repo: string;
  revision: string;
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const COMPLETE_MARKER = ".switchyard-complete";

/** Parses `owner/name[@revision]`; undefined when the text is not a repo id. */
export function parseRepoSpec(spec: string): RepoSpec | undefined {
  const at = spec.indexOf("@");
  const repo = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? "main" : spec.slice(at + 1);
  if (!REPO_ID.test(repo) || repo.includes("..") || !/^[\w./-]+$/.test(revision) || revision.includes("..")) return undefined;
  return { repo, revision };
}

/** Where a repo revision lives in the cache. */
export function repoCacheDir(cacheDir: string, { repo, revision }: RepoSpec): string {
  return join(cacheDir, repo.replace("/", "--"), revision.replaceAll("/", "--"));
}

export class HubError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "HubError";
  }
}

/** The sha256 in an ETag-like header (`"<64 hex>"`, possibly weak), if it is one. */
function sha256FromEtag(value: string | null): string | undefined {
  const tag = value?.replace(/^W\//, "").replaceAll('"', "").trim().toLowerCase();
  return tag && /^[0-9a-f]{64}$/.test(tag) ? tag : undefined;
}

async function hashExisting(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

class FileDownloader {
  private readonly endpoint: string;
  private readonly fetchImpl: typeof fetch;

  constructor(
    private readonly spec: RepoSpec,
    private readonly folder: string,
    private readonly options: HubOptions,
  ) {
    this.endpoint = (options.hubEndpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
    this.fetchImpl = options.fetchImpl ?? fetch;
  }

  private url(file: string): string {
    const { repo, revision } = this.spec;
    return `${this.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
  }

  private auth(): Record<string, string> {
    return this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
  }

  private describe(file: string): string {
    return `${file} of ${this.spec.repo}@${this.spec.revision} from ${this.endpoint}`;
  }

  /**
   * The expected sha256, from a HEAD request without following redirects: the Hub puts the LFS
   * hash in X-Linked-Etag on its redirect to the CDN. Returns undefined for a missing file.
   */
  private async probe(file: string): Promise<{ sha256?: string } | undefined> {
    const response = await this.fetchImpl(this.url(file), { method: "HEAD", redirect: "manual", headers: this.auth() });
    if (response.status === 404) return undefined;
    if (response.status === 401 || response.status === 403) {
      throw new HubError(`cannot access ${this.describe(file)}: HTTP ${response.status} (missing, private or gated repo)`, response.status);
    }
    if (response.status >= 400) throw new HubError(`HTTP ${response.status} for ${this.describe(file)}`, response.status);
    return { sha256: sha256FromEtag(response.headers.get("x-linked-etag")) ?? sha256FromEtag(response.headers.get("etag")) };
  }

  /** Downloads one file unless present; returns false when the Hub has no such file. */
  async fetchFile(file: string): Promise<boolean> {
    const destination = join(this.folder, file);
    if (existsSync(destination)) return true;
    const probe = await this.probe(file);
    if (!probe) return false;
    await mkdir(dirname(destination), { recursive: true });
    const partial = `${destination}.incomplete`;
    const attempts = this.options.maxAttempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.transfer(file, partial, probe.sha256);
        break;
      } catch (error) {
        if (error instanceof HubError || attempt >= attempts) throw error;
      }
    }
    await rename(partial, destination);
    return true;
  }

  /** One GET, resuming from the bytes already in `partial`; verifies the hash once complete. */
  private async transfer(file: string, partial: string, sha256: string | undefined): Promise<void> {
    let offset = await sizeOf(partial);
    const headers: Record<string, string> = offset > 0 ? { ...this.auth(), Range: `bytes=${offset}-` } : this.auth();
    const response = await this.fetchImpl(this.url(file), { headers });
    if (response.status === 416 && offset > 0) {
      await response.body?.cancel();
      const size = Number(/\/(\d+)$/.exec(response.headers.get("content-range") ?? "")?.[1]);
      if (size !== offset) {
        await rm(partial, { force: true }); // longer than the file: not a prefix of it
        throw new Error(`${file}: partial download of ${offset} bytes does not fit the file (${size} bytes); restarting`);
      }
      // Otherwise the partial file already holds every byte: go on to verification.
    } else if (!response.ok) {
      await response.body?.cancel();
      const message = `HTTP ${response.status} while downloading ${this.describe(file)}`;
      // Server errors may pass; client errors will not, so they are not retried.
      throw response.status >= 500 ? new Error(message) : new HubError(message, response.status);
    } else {
      if (response.status !== 206) offset = 0; // the server ignored the Range: start over
      await this.writeBody(file, partial, response, offset);
    }
    if (sha256) await this.verify(file, partial, sha256);
  }

  private async writeBody(file: string, partial: string, response: Response, offset: number): Promise<void> {
    const length = Number(response.headers.get("content-length") ?? NaN);
    const total = Number.isFinite(length) ? offset + length : undefined;
    const handle = await open(partial, offset > 0 ? "a" : "w");
    let received = offset;
    try {
      this.options.onProgress?.({ file, received, total });
      for await (const chunk of response.body ?? []) {
        await handle.write(chunk);
        received += chunk.byteLength;
        this.options.onProgress?.({ file, received, total });
      }
    } finally {
      await handle.close();
    }
    if (total !== undefined && received !== total) {
      throw new Error(`${file}: connection ended after ${received} of ${total} bytes`);
    }
  }

  private async verify(file: string, partial: string, expected: string): Promise<void> {
    const hash = createHash("sha256");
    await hashExisting(partial, hash);
    const actual = hash.digest("hex");
    if (actual !== expected) {
      await rm(partial, { force: true });
      throw new HubError(`checksum mismatch for ${this.describe(file)}: expected sha256 ${expected}, got ${actual}`);
    }
  }
}

const REQUIRED_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"];
const OPTIONAL_FILES = ["generation_config.json", "chat_template.jinja"];

async function fetchWeights(downloader: FileDownloader, folder: string): Promise<string[]> {
  if (await downloader.fetchFile("model.safetensors")) return ["model.safetensors"];
  const index = "model.safetensors.index.json";
  if (!(await downloader.fetchFile(index))) throw new HubError(`the repo has neither model.safetensors nor ${index}`);
  const weightMap = (JSON.parse(await readFile(join(folder, index), "utf8")) as { weight_map?: Record<string, string> }).weight_map;
  const shards = [...new Set(Object.values(weightMap ?? {}))].sort();
  for (const shard of shards) {
    if (!(await downloader.fetchFile(shard))) throw new HubError(`shard ${shard} listed in ${index} is missing from the repo`);
  }
  return [index, ...shards];
}

/** Downloads (or finds already downloaded) a model repo revision; returns its local folder. */
export async function downloadModel(spec: RepoSpec, options: HubOptions): Promise<string> {
  const folder = repoCacheDir(options.cacheDir, spec);
  if (existsSync(join(folder, COMPLETE_MARKER))) return folder;
  const downloader = new FileDownloader(spec, folder, options);
  const first = REQUIRED_FILES[0];
  if (!(await downloader.fetchFile(first))) {
    const endpoint = options.hubEndpoint ?? DEFAULT_HUB_ENDPOINT;
    throw new HubError(`model repo ${spec.repo}@${spec.revision} not found at ${endpoint} (no ${first})`, 404);
  }
  const files = [first];
  for (const file of REQUIRED_FILES.slice(1)) {
    if (!(await downloader.fetchFile(file))) throw new HubError(`model repo ${spec.repo}@${spec.revision} has no ${file}`, 404);
    files.push(file);
  }
  for (const file of OPTIONAL_FILES) if (await downloader.fetchFile(file)) files.push(file);
  files.push(...(await fetchWeights(downloader, folder)));
  await writeFile(join(folder, COMPLETE_MARKER), `${JSON.stringify({ ...spec, files }, null, 2)}\n`);
  return folder;
}
