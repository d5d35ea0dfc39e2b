import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FleetStats } from "../../clients/fleet.ts";
import type { HttpMetrics } from "../../edge/middleware/request-context.ts";

/** Prometheus metrics for the Node entry: request counts and latency histograms by route and status. */
export function createPrometheus() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "switchyard_" });
  const labelNames = ["method", "route", "status"] as const;
  const requests = new Counter({ name: "switchyard_http_requests_total", help: "HTTP requests", labelNames, registers: [registry] });
  const latency = new Histogram({
    name: "switchyard_http_request_duration_seconds",
    help: "HTTP request latency",
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const http: HttpMetrics = {
    observe({ method, route, status }, seconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      latency.observe(labels, seconds);
    },
  };
  return { registry, http, text: () => registry.metrics() };
}

/** Gauges read from the engine's scheduler at scrape time. */
export function registerEngineGauges(registry: Registry, stats: () => { waiting: number; running: number; paused: number; pauses: number; decodeSteps: number }): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  gauge("switchyard_engine_waiting_requests", "Requests queued for a batch slot", () => stats().waiting);
  gauge("switchyard_engine_running_sequences", "Sequences in the running batch", () => stats().running);
  gauge("switchyard_engine_paused_sequences", "Sequences paused because their client is not reading", () => stats().paused);
  gauge("switchyard_engine_pauses", "Times a sequence was paused because its client fell behind", () => stats().pauses);
  gauge("switchyard_engine_decode_steps", "Decode steps run since start", () => stats().decodeSteps);
}

/** An edge's view of its inference fleet, read at scrape time: per node up, in flight and served; retries and spills. */
export function registerFleetGauges(registry: Registry, stats: () => FleetStats): void {
  const registers = [registry];
  const perNode = (name: string, help: string, read: (n: FleetStats["nodes"][number]) => number) =>
    new Gauge({
      name, help, labelNames: ["node"], registers,
      collect() {
        for (const node of stats().nodes) this.set({ node: node.url }, read(node));
      },
    });
  perNode("switchyard_fleet_node_up", "1 while the inference node answers its checks", (n) => (n.up ? 1 : 0));
  perNode("switchyard_fleet_node_inflight", "Generations this edge has open on the node", (n) => n.inflight);
  perNode("switchyard_fleet_node_served", "Generations the node served since the edge started", (n) => n.served);
  new Gauge({ name: "switchyard_fleet_retries", help: "Generations moved to another node after a failure before their first event", registers, collect() { this.set(stats().retries); } });
  new Gauge({ name: "switchyard_fleet_spills", help: "Generations sent past their saturated first node", registers, collect() { this.set(stats().spills); } });
}
