import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../hosts/node/config.ts";
import { startPlatform, type Platform, type StartOptions } from "../../hosts/node/server.ts";

export const ADMIN_KEY = "test-admin-key-0123456789";

/** A fetch Response whose JSON tests may index freely. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TestResponse = Omit<Response, "json"> & { json(): Promise<any> };

export interface TestPlatform {
  platform: Platform;
  url: string;
  dataDir: string;
  config: Config;
  /** fetch against the platform with an optional bearer key and JSON body. */
  call(method: string, path: string, options?: { key?: string; json?: unknown; body?: string | Uint8Array | FormData; headers?: Record<string, string> }): Promise<TestResponse>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Boots the real platform on a free port with a real SQLite file in a temp dir (or `options.dataDir`, removed on stop; `options.now`: the rate limits' clock). No trainer child unless `env` turns SWITCHYARD_TRAINER on. */
export async function startTestPlatform(env: Record<string, string> = {}, options: Pick<StartOptions, "now" | "trainerEnv"> & { dataDir?: string } = {}): Promise<TestPlatform> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "switchyard-test-"));
  // One embedding thread unless a test asks: a spare would load a second model (about 2 CPU-s) in tests that batch-ingest.
  const config = loadConfig({ SWITCHYARD_LOG_LEVEL: "silent", SWITCHYARD_TRAINER: "off", SWITCHYARD_EMBED_THREADS: "1", ...env, SWITCHYARD_PORT: "0", SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_ADMIN_KEY: ADMIN_KEY });
  const state = { platform: await startPlatform(config, { ...options, announce: () => {} }) };
  const handle: TestPlatform = {
    get platform() {
      return state.platform;
    },
    get url() {
      return state.platform.url;
    },
    dataDir,
    config,
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.key) headers.authorization = `Bearer ${options.key}`;
      let body = options.body;
      if (options.json !== undefined) {
        headers["content-type"] ??= "application/json";
        body = JSON.stringify(options.json);
      }
      return fetch(`${state.platform.url}${path}`, { method, headers, body });
    },
    async restart() {
      await state.platform.close();
      state.platform = await startPlatform(config, { ...options, announce: () => {} });
    },
    async stop() {
      await state.platform.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** Creates a tenant and a key for it through the admin API. */
export async function createTenantWithKey(p: TestPlatform, name = "acme"): Promise<{ tenantId: string; key: string; keyId: string }> {
  const tenant = await (await p.call("POST", "/v1/admin/tenants", { key: ADMIN_KEY, json: { name } })).json();
  const issued = await (await p.call("POST", `/v1/admin/tenants/${tenant.id}/keys`, { key: ADMIN_KEY, json: { name: "test" } })).json();
  return { tenantId: tenant.id, key: issued.key, keyId: issued.id };
}
