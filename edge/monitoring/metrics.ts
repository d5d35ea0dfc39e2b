/**
 * What monitoring reports to the host's metrics (Prometheus on Node; nothing on Workers): gauges and
 * counters labelled by tenant and adapter (`""` for none). The edge names the events; the host owns
 * the metric types and names (hosts/node/prometheus.ts).
 */
export interface MonitoringMetrics {
  /** A monitor check's mean of one metric. */
  monitorScore(labels: { tenant: string; adapter: string; monitor: string; metric: string }, value: number): void;
  /** Whether the monitor's last check raised an alert (1) or not (0). */
  monitorAlerting(labels: { tenant: string; adapter: string; monitor: string }, alerting: boolean): void;
  /** One alert raised. */
  monitorAlert(labels: { tenant: string; adapter: string; monitor: string; kind: string }): void;
  /** The input drift of the tenant's recent prompts against the adapter's training data. */
  inputDrift(labels: { tenant: string; adapter: string }, value: number): void;
  /** One rating of a served response. */
  feedback(labels: { tenant: string; adapter: string; strategy: string; rating: string }): void;
}

export const noMonitoringMetrics: MonitoringMetrics = {
  monitorScore() {},
  monitorAlerting() {},
  monitorAlert() {},
  inputDrift() {},
  feedback() {},
};
