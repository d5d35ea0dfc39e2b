import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { z } from "zod";
import { EXECUTION_PROVIDERS } from "../../services/inference/execution-provider.ts";

/**
 * Platform configuration: environment variables, overridden by CLI flags. Validated once at start;
 * a bad value stops the start with one line naming the variable.
 */
const portNumber = z.coerce.number().int().min(0).max(65535);
const byteSize = z
  .string()
  .regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/i, "expected a size like 1048576, 512kb or 64mb")
  .transform(parseByteSize);
/** A comma-separated list of node URLs (http or https), at least one, in order. */
const nodeUrls = z
  .string()
  .transform((v) => v.split(",").map((s) => s.trim()).filter((s) => s !== ""))
  .pipe(z.array(z.url({ protocol: /^https?$/ })).min(1));

export const ConfigSchema = z.object({
  host: z.string().min(1).default("127.0.0.1"),
  port: portNumber.default(8787),
  dataDir: z.string().min(1).default("./data"),
  /** Admin bearer key; when unset, one is generated and printed on first start. */
  adminKey: z.string().min(16, "must be at least 16 characters").optional(),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Largest JSON request body. */
  maxJsonBody: byteSize.default(1024 * 1024),
  /** Largest upload body (documents, adapter archives). */
  maxUploadBody: byteSize.default(64 * 1024 * 1024),
  /** Most lines one uploaded training file (JSONL) may have; its bytes are capped by maxUploadBody. */
  maxTrainingFileLines: z.coerce.number().int().min(1).default(100_000),
  /** Default per-tenant request rate, per minute (0 = unlimited); admins may override per tenant. */
  requestsPerMinute: z.coerce.number().int().min(0).default(600),
  /** How long a shutdown waits for in-flight requests. */
  shutdownTimeoutMs: z.coerce.number().int().min(0).default(10_000),
  /** A streaming client that reads nothing for this long has its generation cancelled (0 = never). */
  streamStallTimeoutMs: z.coerce.number().int().min(0).default(30_000),
  /** Model folder, search-path name or Hugging Face repo id; empty = first model on the search path. */
  model: z.string().optional(),
  modelPath: z.string().default("./models:../shared/models"),
  /** onnxruntime's execution provider for the engine (services/inference/engine.ts); "cuda" needs onnxruntime-node's CUDA build. */
  executionProvider: z.enum(EXECUTION_PROVIDERS).default("cpu"),
  /** The base model's serving format: float, or its linear weights quantized to int8 / int4 when compiled. */
  weights: z.enum(["f32", "int8", "int4"]).default("f32"),
  /** Where the engine runs: a worker thread (default; HTTP handling never waits on a decode step) or the edge's own thread. */
  engineThread: z.enum(["worker", "main"]).default("worker"),
  /** Most generation requests waiting for a batch slot; more get 429. */
  maxQueue: z.coerce.number().int().min(1).default(256),
  /** Memory one fine-tuning step may use, MiB; unset: what the machine has available (trainer/memory.ts). */
  trainerMemoryMb: z.coerce.number().int().min(1).optional(),
  /** Largest LoRA rank accepted for upload. */
  maxLoraRank: z.coerce.number().int().min(1).max(256).default(64),
  /** Most distinct adapters decoded together in one batch (sequences of others wait). */
  maxAdaptersPerBatch: z.coerce.number().int().min(1).max(256).default(32),
  /** Memory budget of the loaded-adapter cache. */
  adapterCacheBytes: byteSize.default(512 * 1024 * 1024),
  /** The only folder POST /v1/load_lora_adapter may read adapters from; unset, that endpoint refuses. */
  loraDir: z
    .string()
    .min(1)
    .refine((dir) => statSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false, "no such directory")
    .optional(),
  /** Most bytes one document may decode to while it is parsed (PDF streams can inflate a thousandfold). */
  maxParseBytes: byteSize.default(256 * 1024 * 1024),
  /** How long parsing one document may take before it fails. */
  parseTimeoutMs: z.coerce.number().int().min(1).default(30_000),
  /** A BERT-family ONNX folder (model.onnx + tokenizer.json) to embed with instead of USE Lite. */
  embeddingModel: z.string().optional(),
  /** USE Lite with int8 dense layers: about 1.9x less embedding CPU (README: retrieval, int8 quality). */
  embeddingInt8: z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true").default(false),
  /** Worker threads that embed (ingestion and queries) off the HTTP event loop; 0 embeds on it. One per core up to 4 (DEFAULT_EMBED_THREADS); all but the first start at the first large ingestion. */
  embedThreads: z.coerce.number().int().min(0).max(64).default(Math.min(4, availableParallelism())),
  /** Whether `switchyard start` runs the fine-tuning trainer as a supervised child process. */
  trainer: z.enum(["on", "off", "1", "0", "true", "false"]).transform((v) => v === "on" || v === "1" || v === "true").default(true),
  /** How long a trainer's claim on a job holds without a heartbeat: a killed trainer's job is resumed this long after it died. */
  trainerLeaseMs: z.coerce.number().int().min(100).default(30_000),
  /** How often a running job's lease is renewed (well under the lease). */
  trainerHeartbeatMs: z.coerce.number().int().min(10).default(5_000),
  /** Edge-to-node secrets, comma-separated: nodes accept a signature by any, clients sign with the first (clients/wire/auth.ts). */
  nodeSecret: z
    .string()
    .refine((v) => v.split(",").every((s) => s.trim().length >= 16), "each secret must be at least 16 characters")
    .optional(),
  /** A node also accepts the old `Authorization: Bearer <secret>` (while edges are upgraded to signing; off otherwise). */
  nodeAcceptBearer: z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true").default(false),
  /** Inference nodes (`switchyard serve inference`), comma-separated, the edge uses instead of an in-process engine; two or more make a fleet (clients/fleet.ts). */
  inferenceUrl: nodeUrls.optional(),
  /** How a fleet places generations: by the adapter's rendezvous hash (its cache stays warm) or at random. */
  fleetRouting: z.enum(["rendezvous", "random"]).default("rendezvous"),
  /** How often the edge reads each fleet node's load (health and queue depth). */
  fleetCheckIntervalMs: z.coerce.number().int().min(10).default(2_000),
  /** Queued requests at which a fleet node counts as saturated: its adapters spill to their next node. */
  fleetSpillQueue: z.coerce.number().int().min(1).default(16),
  /** Retrieval nodes (`switchyard serve retrieval`), comma-separated, the edge uses instead of an in-process knowledge base; two or more are partitioned by tenant (clients/knowledge-partitions.ts). */
  retrievalUrl: nodeUrls.optional(),
  /** A control node (`switchyard serve trainer --port N`) the edge uses for fine-tuning jobs, the adapter catalog and files; it runs the jobs, so no trainer child is started. */
  trainerUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** Per-attempt timeout of edge-to-node calls (until the response head). */
  nodeTimeoutMs: z.coerce.number().int().min(1).default(30_000),
  /** Lets monitors' webhooks reach loopback and private addresses (receivers on your own network); off, only public ones. */
  webhookAllowPrivate: z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true").default(false),
});

export type Config = z.output<typeof ConfigSchema>;

/** Each config key, its environment variable and its CLI flag. */
export const CONFIG_SOURCES: Record<keyof Config, { env: string; flag: string }> = {
  host: { env: "SWITCHYARD_HOST", flag: "--host" },
  port: { env: "SWITCHYARD_PORT", flag: "--port" },
  dataDir: { env: "SWITCHYARD_DATA_DIR", flag: "--data-dir" },
  adminKey: { env: "SWITCHYARD_ADMIN_KEY", flag: "--admin-key" },
  logLevel: { env: "SWITCHYARD_LOG_LEVEL", flag: "--log-level" },
  maxJsonBody: { env: "SWITCHYARD_MAX_JSON_BODY", flag: "--max-json-body" },
  maxUploadBody: { env: "SWITCHYARD_MAX_UPLOAD_BODY", flag: "--max-upload-body" },
  maxTrainingFileLines: { env: "SWITCHYARD_MAX_TRAINING_FILE_LINES", flag: "--max-training-file-lines" },
  requestsPerMinute: { env: "SWITCHYARD_REQUESTS_PER_MINUTE", flag: "--requests-per-minute" },
  shutdownTimeoutMs: { env: "SWITCHYARD_SHUTDOWN_TIMEOUT_MS", flag: "--shutdown-timeout-ms" },
  streamStallTimeoutMs: { env: "SWITCHYARD_STREAM_STALL_TIMEOUT_MS", flag: "--stream-stall-timeout-ms" },
  model: { env: "SWITCHYARD_MODEL", flag: "--model" },
  modelPath: { env: "SWITCHYARD_MODEL_PATH", flag: "--model-path" },
  maxQueue: { env: "SWITCHYARD_MAX_QUEUE", flag: "--max-queue" },
  trainerMemoryMb: { env: "SWITCHYARD_TRAINER_MEMORY_MB", flag: "--trainer-memory-mb" },
  maxLoraRank: { env: "SWITCHYARD_MAX_LORA_RANK", flag: "--max-lora-rank" },
  maxAdaptersPerBatch: { env: "SWITCHYARD_MAX_ADAPTERS_PER_BATCH", flag: "--max-adapters-per-batch" },
  adapterCacheBytes: { env: "SWITCHYARD_ADAPTER_CACHE", flag: "--adapter-cache" },
  loraDir: { env: "SWITCHYARD_LORA_DIR", flag: "--lora-dir" },
  engineThread: { env: "SWITCHYARD_ENGINE_THREAD", flag: "--engine-thread" },
  executionProvider: { env: "SWITCHYARD_EXECUTION_PROVIDER", flag: "--execution-provider" },
  weights: { env: "SWITCHYARD_WEIGHTS", flag: "--weights" },
  maxParseBytes: { env: "SWITCHYARD_MAX_PARSE_BYTES", flag: "--max-parse-bytes" },
  parseTimeoutMs: { env: "SWITCHYARD_PARSE_TIMEOUT_MS", flag: "--parse-timeout-ms" },
  embeddingModel: { env: "SWITCHYARD_EMBEDDING_MODEL", flag: "--embedding-model" },
  embeddingInt8: { env: "SWITCHYARD_EMBEDDING_INT8", flag: "--embedding-int8" },
  embedThreads: { env: "SWITCHYARD_EMBED_THREADS", flag: "--embed-threads" },
  trainer: { env: "SWITCHYARD_TRAINER", flag: "--trainer" },
  trainerLeaseMs: { env: "SWITCHYARD_TRAINER_LEASE_MS", flag: "--trainer-lease-ms" },
  trainerHeartbeatMs: { env: "SWITCHYARD_TRAINER_HEARTBEAT_MS", flag: "--trainer-heartbeat-ms" },
  nodeSecret: { env: "SWITCHYARD_NODE_SECRET", flag: "--node-secret" },
  nodeAcceptBearer: { env: "SWITCHYARD_NODE_ACCEPT_BEARER", flag: "--node-accept-bearer" },
  inferenceUrl: { env: "SWITCHYARD_INFERENCE_URL", flag: "--inference-url" },
  fleetRouting: { env: "SWITCHYARD_FLEET_ROUTING", flag: "--fleet-routing" },
  fleetCheckIntervalMs: { env: "SWITCHYARD_FLEET_CHECK_INTERVAL_MS", flag: "--fleet-check-interval-ms" },
  fleetSpillQueue: { env: "SWITCHYARD_FLEET_SPILL_QUEUE", flag: "--fleet-spill-queue" },
  retrievalUrl: { env: "SWITCHYARD_RETRIEVAL_URL", flag: "--retrieval-url" },
  trainerUrl: { env: "SWITCHYARD_TRAINER_URL", flag: "--trainer-url" },
  nodeTimeoutMs: { env: "SWITCHYARD_NODE_TIMEOUT_MS", flag: "--node-timeout-ms" },
  webhookAllowPrivate: { env: "SWITCHYARD_WEBHOOK_ALLOW_PRIVATE", flag: "--webhook-allow-private" },
};

export class ConfigError extends Error {}

/** Builds the config from the environment and `--flag value` / `--flag=value` arguments. */
export function loadConfig(env: Record<string, string | undefined>, argv: string[] = []): Config {
  const flags = parseFlags(argv);
  const raw: Record<string, string> = {};
  for (const [key, { env: name, flag }] of Object.entries(CONFIG_SOURCES)) {
    const value = flags.get(flag) ?? env[name];
    if (value !== undefined && value !== "") raw[key] = value;
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const key = String(issue.path[0]) as keyof Config;
  const source = CONFIG_SOURCES[key];
  const given = flags.has(source.flag) ? source.flag : source.env;
  throw new ConfigError(`invalid configuration: ${given}=${JSON.stringify(raw[key])}: ${issue.message}`);
}

/** Flags that may be given more than once: their values join as one comma-separated list. */
const LIST_FLAGS = new Set([CONFIG_SOURCES.inferenceUrl.flag, CONFIG_SOURCES.retrievalUrl.flag]);

function parseFlags(argv: string[]): Map<string, string> {
  const known = new Set(Object.values(CONFIG_SOURCES).map((s) => s.flag));
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    if (!known.has(flag)) throw new ConfigError(`unknown option ${flag} (known: ${[...known].join(", ")})`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`option ${flag} needs a value`);
    const before = flags.get(flag);
    flags.set(flag, before !== undefined && LIST_FLAGS.has(flag) ? `${before},${value}` : value);
  }
  return flags;
}

function parseByteSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(text.trim())!;
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(match[2] ?? "b").toLowerCase() as "b"];
  return Math.floor(Number(match[1]) * unit);
}
