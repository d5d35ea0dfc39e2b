/**
 * The feedback port: served chat completions, kept per tenant for a retention period so that users can
 * rate them and so that recent prompts can be compared with an adapter's training data (input drift).
 * Each response has at most one rating; a later rating replaces the earlier one (a thumbs toggle).
 * A tenant sees only its own responses: another tenant's id is undefined, like an unknown one.
 */

export type Rating = "up" | "down";

/** How long a served response stays ratable, then is pruned (30 days). */
export const RESPONSE_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
/** The longest prompt stored with a response (the last user message), in characters. */
export const MAX_STORED_PROMPT = 2000;

export interface ServedResponse {
  /** The completion's id (`chatcmpl-...`). */
  id: string;
  tenantId: string;
  strategy: string;
  /** The adapter as responses name it (`name@version`); absent for none. */
  adapter?: string;
  /** The last user message, cut to MAX_STORED_PROMPT characters. */
  prompt: string;
  /** Unix ms. */
  createdAt: number;
}

export interface RatedResponse extends ServedResponse {
  rating: Rating;
  comment?: string;
  ratedAt: number;
}

export type FeedbackGroup = "adapter" | "strategy";

export interface FeedbackSummaryQuery {
  /** Unix ms, inclusive (by the response's creation time). */
  since?: number;
  until?: number;
  /** Bucket width in ms (a day, an hour); absent: one bucket for the whole range. */
  bucketMs?: number;
  groupBy: FeedbackGroup[];
}

export interface FeedbackBucket {
  /** The bucket's start, unix ms (0 without bucketing). */
  bucket: number;
  adapter?: string;
  strategy?: string;
  up: number;
  down: number;
}

export interface Feedback {
  /** Keeps a served response (ids are unique; a second record of one id is ignored). */
  recordResponse(response: ServedResponse): Promise<void>;
  /** Rates a response of the tenant's, replacing an earlier rating; undefined when it is not the tenant's (or pruned). */
  rate(tenantId: string, responseId: string, rating: Rating, comment?: string): Promise<RatedResponse | undefined>;
  /** Up and down counts of rated responses, by bucket and the groups asked for, oldest bucket first. */
  summary(tenantId: string, query: FeedbackSummaryQuery): Promise<FeedbackBucket[]>;
  /** The last `limit` prompts served to the tenant with this adapter (null: with none), newest first. */
  recentPrompts(tenantId: string, adapter: string | null, limit: number): Promise<string[]>;
  /** Deletes responses created before `before` (unix ms); how many. */
  prune(before: number): Promise<number>;
}
