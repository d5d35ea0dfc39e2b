/// <reference types="@cloudflare/workers-types" />
import type { LogLevel } from "../../edge/console-log.ts";
import { parseSecrets } from "../../clients/wire/auth.ts";
import type { RateLimiter } from "./rate-limiter.ts";

/** The Worker's bindings (wrangler.toml): D1, the rate limiter, the assets, vars and secrets. */
export interface WorkerEnv {
  DB: D1Database;
  /** The shared counter of rate limits and token budgets ([[durable_objects.bindings]]). */
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  /** Secret: the admin bearer key (`wrangler secret put ADMIN_KEY`). */
  ADMIN_KEY?: string;
  /** Secret: the plane nodes' shared secret, a comma-separated list as SWITCHYARD_NODE_SECRET (the first is sent). */
  NODE_SECRET?: string;
  /** Var: the inference nodes' base URLs, comma-separated (two or more: a fleet, clients/fleet.ts). */
  INFERENCE_URLS?: string;
  /** Var: the retrieval nodes' base URLs, comma-separated (two or more: tenants partitioned, clients/knowledge-partitions.ts). */
  RETRIEVAL_URL?: string;
  /** Var: the control node's base URL (`switchyard serve trainer`: adapters, files, fine-tuning). */
  TRAINER_URL?: string;
  /** Var: per-attempt timeout of a call to a node, ms (default 30 s). */
  NODE_TIMEOUT_MS?: string;
  LOG_LEVEL?: LogLevel;
  REQUESTS_PER_MINUTE?: string;
  /** The playground's files (wrangler.toml's [assets]). */
  ASSETS?: Fetcher;
}

/** What the Worker runs with, read from its bindings. */
export interface WorkerConfig {
  inferenceUrls: string[];
  retrievalUrls: string[];
  trainerUrl?: string;
  /** The secret sent to the nodes (present whenever a node URL is). */
  nodeSecret?: string;
  nodeTimeoutMs: number;
  requestsPerMinute: number;
}

/** A binding the Worker cannot run with; every request answers 500 naming it. */
export class WorkerConfigError extends Error {}

export function workerConfig(env: WorkerEnv): WorkerConfig {
  const inferenceUrls = urlList(env.INFERENCE_URLS, "INFERENCE_URLS");
  const retrievalUrls = urlList(env.RETRIEVAL_URL, "RETRIEVAL_URL");
  const trainerUrl = oneUrl(env.TRAINER_URL, "TRAINER_URL");
  const nodeSecret = parseSecrets(env.NODE_SECRET)[0];
  if ((inferenceUrls.length > 0 || retrievalUrls.length > 0 || trainerUrl) && nodeSecret === undefined) {
    throw new WorkerConfigError("INFERENCE_URLS / RETRIEVAL_URL / TRAINER_URL need the NODE_SECRET secret (the nodes refuse unauthenticated calls)");
  }
  return {
    inferenceUrls,
    retrievalUrls,
    trainerUrl,
    nodeSecret,
    nodeTimeoutMs: positive(env.NODE_TIMEOUT_MS, "NODE_TIMEOUT_MS", 30_000),
    requestsPerMinute: positive(env.REQUESTS_PER_MINUTE, "REQUESTS_PER_MINUTE", 600, true),
  };
}

function urlList(value: string | undefined, name: string): string[] {
  const urls = (value ?? "").split(",").map((u) => u.trim()).filter((u) => u !== "");
  for (const url of urls) {
    if (!isHttpUrl(url)) throw new WorkerConfigError(`${name}: "${url}" is not an http(s) URL`);
  }
  return urls;
}

function oneUrl(value: string | undefined, name: string): string | undefined {
  const urls = urlList(value, name);
  if (urls.length > 1) throw new WorkerConfigError(`${name} names one node`);
  return urls[0];
}

function isHttpUrl(text: string): boolean {
  try {
    return ["http:", "https:"].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

function positive(value: string | undefined, name: string, fallback: number, zeroAllowed = false): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < (zeroAllowed ? 0 : 1)) throw new WorkerConfigError(`${name}: "${value}" is not a ${zeroAllowed ? "non-negative" : "positive"} integer`);
  return n;
}
