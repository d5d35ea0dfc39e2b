import { ConfigError, CONFIG_SOURCES, ConfigSchema, loadConfig, type Config } from "../hosts/node/config.ts";
import { startPlatform, type Platform } from "../hosts/node/server.ts";
import { DataDirInUseError } from "../services/store/data-dir-lock.ts";
import type { CommandHelp } from "./help.ts";

/** What each setting does; a Record over Config's keys, so a new setting cannot go undocumented here. */
const DESCRIPTIONS: Record<keyof Config, { value: string; text: string }> = {
  host: { value: "HOST", text: "address to listen on" },
  port: { value: "N", text: "port to listen on (0: any free port)" },
  dataDir: { value: "DIR", text: "where the database, adapters, indexes and compiled models live" },
  adminKey: { value: "KEY", text: "admin bearer key (16+ characters); unset: one is generated and printed on first start" },
  logLevel: { value: "LEVEL", text: "trace, debug, info, warn, error, fatal or silent" },
  maxJsonBody: { value: "SIZE", text: "largest JSON request body (1048576, 512kb, 64mb)" },
  maxUploadBody: { value: "SIZE", text: "largest upload body (documents, adapter archives)" },
  maxTrainingFileLines: { value: "N", text: "most lines in one uploaded training file (JSONL)" },
  requestsPerMinute: { value: "N", text: "default per-tenant requests per minute (0: unlimited)" },
  shutdownTimeoutMs: { value: "MS", text: "how long a shutdown waits for in-flight requests" },
  streamStallTimeoutMs: { value: "MS", text: "how long a streaming client may take no data before its generation is cancelled (0: never)" },
  model: { value: "MODEL", text: "model folder, search-path name or Hugging Face repo id (unset: first model on the search path)" },
  modelPath: { value: "PATHS", text: "colon-separated folders searched for models" },
  weights: { value: "f32|int8|int4", text: "the base model's serving format: float, or its q/k/v/o/gate/up/down projections and head quantized when compiled (int8 per channel, int4 in blocks of 32); adapters stay float" },
  engineThread: { value: "worker|main", text: "where the engine runs: a worker thread (default; HTTP never waits on a decode step) or the HTTP thread" },
  executionProvider: { value: "cpu|cuda", text: "onnxruntime execution provider of the engine (cuda: onnxruntime-node's CUDA 12 build, CUDA 12 and cuDNN 9; a provider that cannot load stops the start)" },
  maxQueue: { value: "N", text: "most generation requests waiting for a batch slot; more get 429" },
  trainerMemoryMb: { value: "MB", text: "memory one fine-tuning step may use (default: what is available); a job over it fails with out_of_memory" },
  maxLoraRank: { value: "N", text: "largest LoRA rank accepted" },
  maxAdaptersPerBatch: { value: "N", text: "most distinct adapters decoded together in one batch" },
  adapterCacheBytes: { value: "SIZE", text: "memory budget of the loaded-adapter cache" },
  loraDir: { value: "DIR", text: "the folder vLLM-style /v1/load_lora_adapter may load adapters from (unset: that route refuses)" },
  maxParseBytes: { value: "SIZE", text: "most bytes one document may decode to while it is parsed (PDF streams)" },
  parseTimeoutMs: { value: "MS", text: "how long parsing one document may take before it fails" },
  embeddingModel: { value: "DIR", text: "a BERT-family ONNX folder to embed with instead of USE Lite" },
  embeddingInt8: { value: "0|1", text: "USE Lite with int8 dense layers (about 4x faster ingest)" },
  embedThreads: { value: "N", text: "worker threads that embed documents and queries off the HTTP event loop (0: on it)" },
  trainer: { value: "on|off", text: "run the fine-tuning trainer (`switchyard serve trainer`) as a supervised child process" },
  trainerLeaseMs: { value: "MS", text: "how long a trainer's claim on a job holds without a heartbeat (a killed trainer's job resumes after it)" },
  trainerHeartbeatMs: { value: "MS", text: "how often the trainer renews a running job's lease (under the lease)" },
  nodeSecret: { value: "SECRETS", text: "edge-to-node secrets, comma-separated (16+ characters each): calls are HMAC-signed with the first, nodes accept a signature by any" },
  nodeAcceptBearer: { value: "0|1", text: "a node also accepts the old `Authorization: Bearer <secret>` (only while edges are upgraded to signed calls)" },
  inferenceUrl: { value: "URL[,URL...]", text: "use these inference nodes (`switchyard serve inference`) instead of an in-process engine; repeat the flag or separate with commas: two or more make a fleet" },
  fleetRouting: { value: "rendezvous|random", text: "how a fleet places generations: each adapter on its rendezvous-hash node (its cache stays warm), or at random" },
  fleetCheckIntervalMs: { value: "MS", text: "how often the edge reads each fleet node's load (health, queue depth)" },
  fleetSpillQueue: { value: "N", text: "queued requests at which a fleet node is saturated and its adapters spill to their next node" },
  retrievalUrl: { value: "URL[,URL...]", text: "use these retrieval nodes (`switchyard serve retrieval`) instead of an in-process knowledge base; repeat the flag or separate with commas: two or more hold each tenant's documents on its rendezvous-hash node" },
  trainerUrl: { value: "URL", text: "use this control node (`switchyard serve trainer --port N`) for fine-tuning jobs, adapters and files (it runs the jobs: no trainer child); an in-process engine then needs its data dir" },
  nodeTimeoutMs: { value: "MS", text: "per-attempt timeout of edge-to-node calls" },
  webhookAllowPrivate: { value: "1|0", text: "let monitors' webhooks reach loopback and private addresses (off: public ones only)" },
};

export const START_HELP: CommandHelp = {
  usage: "start [options]",
  summary: "Runs the whole platform (API, inference engine, adapters, knowledge base) in this process until SIGINT/SIGTERM.\nEvery option can also be set by its environment variable; a flag wins.",
  options: (Object.keys(CONFIG_SOURCES) as (keyof Config)[]).map((key) => {
    const { value, text } = DESCRIPTIONS[key];
    const fallback = ConfigSchema.shape[key].safeParse(undefined);
    const shown = fallback.success && fallback.data !== undefined ? `, default ${String(fallback.data)}` : "";
    return { flag: `${CONFIG_SOURCES[key].flag} ${value}`, text: `${text} (${CONFIG_SOURCES[key].env}${shown})` };
  }),
};

/** `switchyard start [--port N --host H --data-dir DIR ...]`: serves until SIGINT/SIGTERM. */
export async function startCommand(argv: string[]): Promise<number> {
  let config;
  try {
    config = loadConfig(process.env, argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`switchyard: ${err.message}\n`);
    return 2;
  }
  // The handlers go in before startPlatform logs "switchyard listening": a signal sent as soon as that
  // line is read must shut the platform down, not kill the process by the default action.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  let platform: Platform;
  try {
    platform = await startPlatform(config);
  } catch (err) {
    if (!(err instanceof DataDirInUseError || err instanceof ConfigError)) throw err;
    process.stderr.write(`switchyard: cannot start: ${err.message}\n`);
    return 2;
  }
  const signal = await signalled;
  platform.logger.info({ signal }, "signal received");
  await platform.close();
  return 0;
}
