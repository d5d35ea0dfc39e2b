import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FleetStats } from "../../clients/fleet.ts";
import type { HttpMetrics } from "../../edge/middleware/request-context.ts";
import type { MonitoringMetrics } from "../../edge/monitoring/metrics.ts";

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
export function registerEngineGauges(registry: Registry, stats: () => { waiting: number; running: number; paused: number; pauses: number; decodeSteps: number; kvCacheBytes: number }): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  gauge("switchyard_engine_waiting_requests", "Requests queued for a batch slot", () => stats().waiting);
  gauge("switchyard_engine_running_sequences", "Sequences in the running batch", () => stats().running);
  gauge("switchyard_engine_paused_sequences", "Sequences paused because their client is not reading", () => stats().paused);
  gauge("switchyard_engine_pauses", "Times a sequence was paused because its client fell behind", () => stats().pauses);
  gauge("switchyard_engine_decode_steps", "Decode steps run since start", () => stats().decodeSteps);
  gauge("switchyard_engine_kv_cache_bytes", "Bytes of key/value cache the engine holds (0 when idle)", () => stats().kvCacheBytes);
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

/**
 * Monitoring's metrics (edge/monitoring/metrics.ts), labelled by tenant and adapter ("" for none):
 * - switchyard_monitor_score{tenant,adapter,monitor,metric}: the last check's mean of each metric;
 * - switchyard_monitor_alerting{tenant,adapter,monitor}: 1 when the last check raised an alert;
 * - switchyard_monitor_alerts_total{tenant,adapter,monitor,kind}: alerts raised (threshold, regression);
 * - switchyard_input_drift{tenant,adapter}: the last input drift computed;
 * - switchyard_feedback_total{tenant,adapter,strategy,rating}: ratings of served responses.
 */
export function monitoringMetrics(registry: Registry): MonitoringMetrics {
  const score = new Gauge({ name: "switchyard_monitor_score", help: "Monitor check: mean of a metric over the test set", labelNames: ["tenant", "adapter", "monitor", "metric"], registers: [registry] });
  const alerting = new Gauge({ name: "switchyard_monitor_alerting", help: "Monitor: 1 when its last check raised an alert", labelNames: ["tenant", "adapter", "monitor"], registers: [registry] });
  const alerts = new Counter({ name: "switchyard_monitor_alerts_total", help: "Monitor alerts raised", labelNames: ["tenant", "adapter", "monitor", "kind"], registers: [registry] });
  const drift = new Gauge({ name: "switchyard_input_drift", help: "Input drift of recent prompts against the adapter's training data (1 - centroid cosine)", labelNames: ["tenant", "adapter"], registers: [registry] });
  const feedback = new Counter({ name: "switchyard_feedback_total", help: "Ratings of served chat completions", labelNames: ["tenant", "adapter", "strategy", "rating"], registers: [registry] });
  return {
    monitorScore: (labels, value) => score.set(labels, value),
    monitorAlerting: (labels, on) => alerting.set(labels, on ? 1 : 0),
    monitorAlert: (labels) => alerts.inc(labels),
    inputDrift: (labels, value) => drift.set(labels, value),
    feedback: (labels) => feedback.inc(labels),
  };
}
