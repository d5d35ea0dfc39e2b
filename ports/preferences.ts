/**
 * The preferences port: a tenant's blind-compare choices, each a pair of answers to the same prompt
 * (the one preferred and the other) with the arm (strategy) behind each. They download as DPO pairs
 * for the trainer and add up to a win rate per arm. A tenant sees only its own pairs.
 */

export interface PreferenceMessage {
  role: string;
  content: string;
}

export interface PreferenceAnswer {
  /** The arm that produced the answer (a strategy: prompt, rag, adapter, rag+adapter). */
  arm: string;
  content: string;
}

export interface PreferencePair {
  id: string;
  tenantId: string;
  /** The prompt: the conversation the two answers reply to. */
  messages: PreferenceMessage[];
  chosen: PreferenceAnswer;
  rejected: PreferenceAnswer;
  /** Unix ms. */
  createdAt: number;
}

export interface ArmRecord {
  arm: string;
  wins: number;
  losses: number;
}

export interface Preferences {
  record(tenantId: string, pair: Pick<PreferencePair, "messages" | "chosen" | "rejected">): Promise<PreferencePair>;
  /** The tenant's pairs, oldest first. */
  list(tenantId: string): Promise<PreferencePair[]>;
  /** The pair, or undefined when it is not the tenant's. */
  get(tenantId: string, id: string): Promise<PreferencePair | undefined>;
  /** Whether a pair of the tenant's was deleted. */
  delete(tenantId: string, id: string): Promise<boolean>;
  /** Each arm's wins (chosen) and losses (rejected) over the tenant's pairs, by arm name. */
  armRecords(tenantId: string): Promise<ArmRecord[]>;
}
