/** The usage port: token accounting per tenant, strategy and adapter. */

export interface UsageRecord {
  tenantId: string;
  strategy: string;
  /** The adapter's display name (`name@version`), if one ran. */
  adapter?: string;
  promptTokens: number;
  completionTokens: number;
  /** Unix ms; default now. */
  at?: number;
}

export interface UsageLine {
  strategy: string;
  /** "" when no adapter ran. */
  adapter: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

export interface Usage {
  record(record: UsageRecord): Promise<void>;
  /** Totals per strategy and adapter over [from, to), unix ms. */
  summary(tenantId: string, from: number, to: number): Promise<UsageLine[]>;
}
