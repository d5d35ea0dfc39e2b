/**
 * An inference node's load, as its `/v1/node/load` route answers it (JSON, behind the node secret):
 * what a fleet router reads to take a saturated node out of an adapter's turn. The same numbers are
 * on the node's /metrics in vLLM's names (`vllm:num_requests_waiting`, `vllm:num_requests_running`,
 * `vllm:lora_requests_info`), which a Gateway API inference extension endpoint picker scrapes.
 */
export interface NodeLoad {
  /** Requests queued for a batch slot. */
  waiting: number;
  /** Sequences in the running batch (prefilling, decoding or paused). */
  running: number;
  /** Batch slots: past this many in flight, requests queue. */
  maxRunning: number;
  /** Queue length past which the node refuses with 429 (overloaded). */
  maxQueue: number;
  /** Most distinct adapters one batch may hold (vLLM's max_lora). */
  maxLora: number;
  /** Adapters with a running request, and with a waiting one. */
  runningAdapters: string[];
  waitingAdapters: string[];
  /** Adapters whose weights are in the node's cache, least recently used first. */
  residentAdapters: string[];
}

/** A NodeLoad from untrusted JSON, or undefined when it does not have that shape. */
export function parseNodeLoad(value: unknown): NodeLoad | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const counts = ["waiting", "running", "maxRunning", "maxQueue", "maxLora"] as const;
  const lists = ["runningAdapters", "waitingAdapters", "residentAdapters"] as const;
  if (!counts.every((k) => typeof v[k] === "number" && Number.isFinite(v[k]))) return undefined;
  if (!lists.every((k) => Array.isArray(v[k]) && (v[k] as unknown[]).every((x) => typeof x === "string"))) return undefined;
  return value as NodeLoad;
}
