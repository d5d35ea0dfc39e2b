/**
 * What crosses between the edge's thread and the engine's worker thread (hosts/node/engine-thread.ts,
 * engine-worker.ts): the messages, and errors as plain data. A PlaneError crosses with its kind, code,
 * param and details and is rebuilt as a PlaneError, so the edge maps it to the same HTTP status as an
 * in-process engine's; any other error crosses as its name and message (a 500 either way).
 */
import { fromWireError, toWireError, type WireError as PlaneWireError } from "../../clients/wire/errors.ts";
import { PlaneError } from "../../ports/errors.ts";
import type { GenerateEvent, GenerateRequest, ModelInfo } from "../../ports/inference.ts";
import type { ExecutionProvider } from "../../services/inference/execution-provider.ts";
import type { BaseModelShape, PeftLimits } from "../../services/adapters/peft.ts";
import type { WeightFormat } from "../../services/model/quantize.ts";

/** A PlaneError as the plane nodes' wire has it (clients/wire/errors.ts), or another error's name and message. */
export type WireError = ({ plane: true; name: string } & PlaneWireError) | { plane: false; name: string; message: string };

export function errorToWire(error: unknown): WireError {
  if (error instanceof PlaneError) return { plane: true, name: error.name, ...toWireError(error) };
  if (error instanceof Error) return { plane: false, name: error.name, message: error.message };
  return { plane: false, name: "Error", message: String(error) };
}

export function errorFromWire(wire: WireError): Error {
  const error = wire.plane ? fromWireError({ error: wire }, 500) : new Error(wire.message);
  error.name = wire.name;
  return error;
}

/** The worker's settings: the engine's (all plain data) and where it reads adapters from. */
export interface EngineWorkerOptions {
  modelDir: string;
  modelId: string;
  cacheDir: string;
  maxQueue: number;
  maxLoraRank: number;
  executionProvider?: ExecutionProvider;
  weights?: WeightFormat;
  /** The adapter plane's blob folder, read (never swept) by the worker's own cache and leases. */
  adapters?: { dir: string; base: BaseModelShape; limits: PeftLimits; cacheBudgetBytes: number; maxAdaptersPerBatch: number };
}

/** Events a generation may run ahead of its reader: the worker stops pulling from the engine beyond it, so a slow client still pauses its sequence. */
export const EVENT_CREDIT = 8;

export type ToWorker =
  | { type: "generate"; id: number; request: Omit<GenerateRequest, "signal"> }
  /** Readers took more events: for each [id, n], the worker may send n more of that generation (one post per turn of the edge's loop). */
  | { type: "credits"; grants: [id: number, n: number][] }
  | { type: "cancel"; id: number }
  /** The adapter was deleted: no new lease; its files go when the worker's last holder lets go. */
  | { type: "retire"; id: number; adapter: string }
  | { type: "metrics"; id: number }
  | { type: "stats"; id: number }
  | { type: "close"; id: number };

export type FromWorker =
  | { type: "ready"; info: ModelInfo }
  | { type: "failed"; error: WireError }
  | { type: "reply"; id: number; value?: unknown; error?: WireError }
  | { type: "event"; id: number; event: GenerateEvent }
  /** The generation ended: normally (no error) or with the error its stream threw. */
  | { type: "end"; id: number; error?: WireError }
  /** Several of the above, in order (what one turn of the worker's loop sent). */
  | { type: "batch"; messages: FromWorker[] };
