/**
 * An inference node's load: the JSON of `/v1/node/load` (clients/wire/load.ts) for our fleet router,
 * and the same numbers under vLLM's metric names on /metrics, the way the Gateway API inference
 * extension's endpoint picker reads a model server: `vllm:num_requests_waiting`,
 * `vllm:num_requests_running`, and `vllm:lora_requests_info` (one series; labels `max_lora`,
 * `running_lora_adapters`, `waiting_lora_adapters` as comma-separated adapter ids; value: the time it
 * was read, in seconds, so a scraper takes the latest).
 */
import { Gauge, type Registry } from "prom-client";
import type { NodeLoad } from "../../../clients/wire/load.ts";
import type { AdapterCache } from "../../../services/adapters/index.ts";
import type { Engine } from "../../../services/inference/engine.ts";

export function readNodeLoad(engine: Engine, cache: AdapterCache, maxQueue: number): NodeLoad {
  const stats = engine.stats();
  const adapters = engine.adapterRequests();
  return {
    waiting: stats.waiting,
    running: stats.running + stats.prefilling + stats.paused,
    maxRunning: engine.maxBatch,
    maxQueue,
    maxLora: cache.maxAdaptersPerBatch,
    runningAdapters: adapters.running,
    waitingAdapters: adapters.waiting,
    residentAdapters: cache.residentIds(),
  };
}

/** The vLLM-named gauges, read at scrape time (absent values while the plane loads). */
export function registerNodeLoadGauges(registry: Registry, load: () => NodeLoad | undefined): void {
  const registers = [registry];
  new Gauge({ name: "vllm:num_requests_waiting", help: "Requests waiting for a batch slot", registers, collect() { this.set(load()?.waiting ?? 0); } });
  new Gauge({ name: "vllm:num_requests_running", help: "Requests in the running batch", registers, collect() { this.set(load()?.running ?? 0); } });
  new Gauge({
    name: "vllm:lora_requests_info",
    help: "Running stats on LoRA requests: adapters with running and with waiting requests",
    labelNames: ["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
    registers,
    collect() {
      this.reset(); // one series: the adapters as of now
      const now = load();
      if (!now) return;
      this.set({ max_lora: String(now.maxLora), running_lora_adapters: now.runningAdapters.join(","), waiting_lora_adapters: now.waitingAdapters.join(",") }, Date.now() / 1000);
    },
  });
}
