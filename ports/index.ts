/**
 * Ports: the contracts between the edge and the planes behind it, owned by neither. Each has an
 * in-process implementation (services/, the embedded default) and may have an HTTP client (the
 * scale-out). Ports import nothing but each other.
 */
import type { AdapterCatalog } from "./adapters.ts";
import type { Evaluation } from "./evaluation.ts";
import type { Embeddings } from "./embeddings.ts";
import type { Evals } from "./evals.ts";
import type { Feedback } from "./feedback.ts";
import type { Files } from "./files.ts";
import type { Inference } from "./inference.ts";
import type { Knowledge } from "./knowledge.ts";
import type { Monitors } from "./monitors.ts";
import type { Preferences } from "./preferences.ts";
import type { ApiKeys, Tenants } from "./tenants.ts";
import type { Trainer } from "./trainer.ts";
import type { Usage } from "./usage.ts";

export * from "./adapters.ts";
export * from "./assets.ts";
export * from "./errors.ts";
export * from "./evaluation.ts";
export * from "./embeddings.ts";
export * from "./evals.ts";
export * from "./feedback.ts";
export * from "./files.ts";
export * from "./inference.ts";
export * from "./knowledge.ts";
export * from "./monitors.ts";
export * from "./preferences.ts";
export * from "./rate-limits.ts";
export * from "./tenants.ts";
export * from "./trainer.ts";
export * from "./usage.ts";

/** The planes a host gives the edge; a missing one makes its routes answer 503 plane_unavailable. */
export interface Planes {
  tenants: Tenants;
  keys: ApiKeys;
  inference?: Inference;
  knowledge?: Knowledge;
  adapters?: AdapterCatalog;
  usage?: Usage;
  /** Uploaded files (training data), OpenAI's Files API. */
  files?: Files;
  trainer?: Trainer;
  /** Scores answers against a reference (compare); pure TypeScript, so every host may run it in process. */
  evaluation?: Evaluation;
  /** Blind-compare choices as preference pairs (the playground); the edge's own state, SQLite or D1. */
  preferences?: Preferences;
  /** Evaluation test sets, runs and their per-item results (the host's EvalWorker executes the runs). */
  evals?: Evals;
  /** Served chat completions, their ratings and recent prompts (SQLite or D1). */
  feedback?: Feedback;
  /** Evaluation monitors, their checks and alerts (the host's scheduler runs them). */
  monitors?: Monitors;
  /** The knowledge base's embedder, for input drift. */
  embeddings?: Embeddings;
}
