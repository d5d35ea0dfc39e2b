/**
 * The Inference port over a fleet of inference nodes (HttpInference each). Policy:
 *
 * - Placement: a generation goes to its adapter's (or, without one, the base model's) first node in
 *   rendezvous order (rendezvous.ts), so each adapter stays on one node and that node's adapter cache
 *   stays warm; `placement: "random"` spreads requests at random instead (the benchmark's baseline).
 * - Spill: a node whose queue holds `spillQueueDepth` requests (its last load report, or what this
 *   edge alone has in flight there beyond its batch slots), or that answered 429 within the last check
 *   interval, is tried after the unsaturated ones, in the same order.
 * - Health: every `checkIntervalMs` each node's `/v1/node/load` is read (readiness, the secret and the
 *   load in one call); a node that fails it, or fails a call, is out until a check answers again.
 *   Nodes that are out are tried last, so a fleet whose checks all failed still tries.
 * - Retry: a generation that fails before its first event (no connection, 5xx, not ready, 429,
 *   adapter cache full) is sent to the next node; nothing has reached the caller, so nothing repeats.
 *   Once an event was passed on, a broken stream ends with its error (never retried: tokens would repeat).
 *   Refusals that every node would give (invalid_request, context_length, not_found) are not retried.
 * - model and encode (idempotent, the same on every node) go to the least busy node that is up, then the others.
 *
 * Checks run on a timer after `start()` (Node), and also whenever a call finds them stale (Workers,
 * where a timer cannot outlive a request).
 */
import { PlaneError } from "../ports/errors.ts";
import type { EncodedPrompt, EncodeRequest, GenerateEvent, GenerateRequest, Inference, ModelInfo } from "../ports/inference.ts";
import { HttpInference } from "./inference.ts";
import type { NodeClientOptions } from "./node-call.ts";
import { rendezvousOrder } from "./rendezvous.ts";
import type { NodeLoad } from "./wire/load.ts";

export type Placement = "rendezvous" | "random";

export interface FleetOptions {
  /** The nodes' base URLs; a node's identity in the hash is its URL as given (trailing slashes dropped). */
  nodes: readonly string[];
  secret: string;
  /** Per-attempt timeout of calls to a node (until the response head); default 30 s. */
  timeoutMs?: number;
  /** How often each node's load is read; default 2 s. */
  checkIntervalMs?: number;
  /** Queued requests at which a node counts as saturated; default 16. */
  spillQueueDepth?: number;
  placement?: Placement;
  fetch?: typeof fetch;
  /** For random placement; default Math.random. */
  random?: () => number;
  now?: () => number;
}

/** One node as the fleet sees it (for metrics and tests). */
export interface FleetNodeState {
  url: string;
  up: boolean;
  /** Generations this edge has open on the node. */
  inflight: number;
  /** Generations the node served (its first event reached the caller). */
  served: number;
  /** The node's last load report (absent before the first answer). */
  load?: NodeLoad;
}

export interface FleetStats {
  nodes: FleetNodeState[];
  /** Generations moved to another node after one failed before its first event. */
  retries: number;
  /** Generations sent past a saturated node. */
  spills: number;
}

interface Member extends FleetNodeState {
  client: HttpInference;
  overloadedUntil: number;
}

const RETRY_KINDS = new Set(["unavailable", "busy", "overloaded", "plane_unavailable"]);

export class FleetInference implements Inference {
  private readonly members: Member[];
  private readonly interval: number;
  private readonly spillAt: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private lastCheck = -Infinity;
  private checking?: Promise<void>;
  private timer?: ReturnType<typeof setInterval>;
  private info?: Promise<ModelInfo>;
  private counters = { retries: 0, spills: 0 };

  constructor(private readonly options: FleetOptions) {
    if (options.nodes.length === 0) throw new Error("a fleet needs at least one inference node");
    const client = (url: string): NodeClientOptions => ({ url, secret: options.secret, timeoutMs: options.timeoutMs, fetch: options.fetch, retries: 0 });
    const urls = [...new Set(options.nodes.map((u) => u.replace(/\/+$/, "")))];
    this.members = urls.map((url) => ({ url, client: new HttpInference(client(url)), up: true, inflight: 0, served: 0, overloadedUntil: 0 }));
    this.interval = options.checkIntervalMs ?? 2_000;
    this.spillAt = options.spillQueueDepth ?? 16;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /** Starts the periodic checks (a timer that does not keep a Node process alive); the first runs now. */
  start(): void {
    if (this.timer !== undefined) return;
    void this.check();
    const timer = setInterval(() => void this.check(), this.interval);
    (timer as unknown as { unref?: () => void }).unref?.();
    this.timer = timer;
  }

  /** Reads every node's load once; resolves when all have answered or failed. */
  check(): Promise<void> {
    this.checking ??= Promise.all(this.members.map((m) => this.checkOne(m))).then(() => {
      this.lastCheck = this.now();
      this.checking = undefined;
    });
    return this.checking;
  }

  stats(): FleetStats {
    return { nodes: this.members.map(({ url, up, inflight, served, load }) => ({ url, up, inflight, served, load })), ...this.counters };
  }

  /** The nodes a generation for this key tries, in order (rendezvous; unsaturated, then saturated, then out). */
  candidates(key: string): string[] {
    return this.plan(key).order.map((m) => m.url);
  }

  model(): Promise<ModelInfo> {
    this.info ??= this.anyNode((c) => c.model()).catch((err: unknown) => {
      this.info = undefined;
      throw err;
    });
    return this.info;
  }

  encode(request: EncodeRequest): Promise<EncodedPrompt> {
    return this.anyNode((c) => c.encode(request));
  }

  async *generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const { order, spilled } = this.plan(request.adapter ?? "");
    if (spilled) this.counters.spills++;
    let last: unknown;
    for (const member of order) {
      if (request.signal?.aborted) throw request.signal.reason;
      member.inflight++;
      const events = member.client.generate(request)[Symbol.asyncIterator]();
      try {
        let first: IteratorResult<GenerateEvent>;
        try {
          first = await events.next();
        } catch (err) {
          if (request.signal?.aborted || !retryable(err)) throw err;
          this.failed(member, err);
          this.counters.retries++;
          last = err;
          continue;
        }
        member.served++;
        if (first.done) return;
        yield first.value;
        try {
          for (let next = await events.next(); !next.done; next = await events.next()) yield next.value;
        } catch (err) {
          if (!request.signal?.aborted) this.failed(member, err);
          throw err;
        }
        return;
      } finally {
        member.inflight--;
        await events.return?.(undefined);
      }
    }
    throw last ?? new PlaneError("unavailable", "No inference node is configured.", { code: "no_inference_node" });
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
  }

  /** The key's nodes in the order to try them, and whether its first choice that is up was passed over as saturated. */
  private plan(key: string): { order: Member[]; spilled: boolean } {
    if (this.timer === undefined && this.now() - this.lastCheck > this.interval) void this.check();
    const ordered = this.options.placement === "random" ? shuffled(this.members, this.random) : rendezvousOrder(this.members, key, (m) => m.url);
    const up = ordered.filter((m) => m.up);
    const free = up.filter((m) => !this.saturated(m));
    const order = [...free, ...up.filter((m) => this.saturated(m)), ...ordered.filter((m) => !m.up)];
    return { order, spilled: up.length > 0 && order[0] !== up[0] };
  }

  private saturated(member: Member): boolean {
    if (this.now() < member.overloadedUntil) return true;
    const reported = member.load?.waiting ?? 0;
    const ours = member.inflight - (member.load?.maxRunning ?? Infinity);
    return Math.max(reported, ours) >= this.spillAt;
  }

  /** An idempotent call on the least busy node that is up, then on each other node once. */
  private async anyNode<T>(call: (client: HttpInference) => Promise<T>): Promise<T> {
    const up = this.members.filter((m) => m.up).sort((a, b) => a.inflight - b.inflight);
    let last: unknown;
    for (const member of [...up, ...this.members.filter((m) => !m.up)]) {
      try {
        return await call(member.client);
      } catch (err) {
        if (!retryable(err)) throw err;
        this.failed(member, err);
        last = err;
      }
    }
    throw last;
  }

  /** An overloaded node stays in (saturated until the next check); any other failure takes it out until a check answers. */
  private failed(member: Member, err: unknown): void {
    if (err instanceof PlaneError && err.kind === "overloaded") member.overloadedUntil = this.now() + this.interval;
    else if (!(err instanceof PlaneError && err.kind === "busy")) member.up = false;
  }

  private async checkOne(member: Member): Promise<void> {
    try {
      member.load = await member.client.load(Math.min(this.options.timeoutMs ?? 30_000, Math.max(this.interval, 1_000)));
      member.up = true;
    } catch {
      member.up = false;
    }
  }
}

function retryable(err: unknown): boolean {
  return err instanceof PlaneError && RETRY_KINDS.has(err.kind);
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
