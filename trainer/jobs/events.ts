/** Appends a job's events (OpenAI's fine_tuning.job.event: `message` lines and per-step `metrics`). */
import { fineTuneEvents } from "../../services/store/schema.ts";
import type { StoreDb } from "../../services/store/store-db.ts";

export interface NewEvent {
  level?: "info" | "warn" | "error";
  type?: "message" | "metrics";
  message: string;
  data?: Record<string, number | string>;
}

export async function appendEvent(db: StoreDb, jobId: string, event: NewEvent, now: number): Promise<void> {
  await db.insert(fineTuneEvents).values({ jobId, level: event.level ?? "info", type: event.type ?? "message", message: event.message, data: event.data ?? null, createdAt: now });
}
