/**
 * The fine-tuning commands' client of a running server: plain fetch with a tenant key over the
 * OpenAI-shaped routes (files, fine-tuning jobs, their events, models). The JSON types are the server's
 * own (the edge routes' serializers), so the two cannot drift apart unnoticed. A refusal is an
 * ApiRequestError carrying the OpenAI error body; a server that does not answer, ServerUnreachableError.
 */
import type { fileJson } from "../edge/routes/files.ts";
import type { eventJson, jobJson } from "../edge/routes/fine-tuning.ts";
import type { datasetJson, runJson } from "../edge/routes/evals.ts";
import type { EvalReport } from "../edge/evals/report.ts";

export type FileJson = ReturnType<typeof fileJson>;
export type JobJson = ReturnType<typeof jobJson>;
export type EventJson = ReturnType<typeof eventJson>;
export type EvalDatasetJson = ReturnType<typeof datasetJson>;
export type EvalRunJson = ReturnType<typeof runJson>;

interface ListJson<T> {
  data: T[];
  has_more: boolean;
}

interface JobHyperparameters {
  n_epochs?: number;
  batch_size?: number;
  learning_rate_multiplier?: number;
}

/** What `POST /v1/fine_tuning/jobs` takes (OpenAI's fields and the `switchyard` extension). */
export interface JobCreateBody {
  model: string;
  training_file: string;
  validation_file?: string;
  suffix?: string;
  seed?: number;
  method:
    | { type: "supervised"; supervised: { hyperparameters: JobHyperparameters } }
    | { type: "dpo"; dpo: { hyperparameters: JobHyperparameters & { beta?: number } } };
  switchyard?: { r?: number; alpha?: number; learning_rate?: number; max_steps?: number; loss_type?: "sigmoid" | "ipo" };
}

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

/** The server did not answer at all (gone, or a wrong --url). */
export class ServerUnreachableError extends Error {}

/** The server refused a request: its OpenAI error body. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null,
    readonly param: string | null,
  ) {
    super(message);
  }
}

const GET_ATTEMPTS = 3;

export class ServerApi {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly key: string,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  /** Uploads a training file (`purpose=fine-tune`); the server validates every line. */
  uploadFile(bytes: Uint8Array, filename: string): Promise<FileJson> {
    const form = new FormData();
    form.set("purpose", "fine-tune");
    form.set("file", new Blob([new Uint8Array(bytes)]), filename);
    return this.call("POST", "/files", form);
  }

  createJob(body: JobCreateBody): Promise<JobJson> {
    return this.call("POST", "/fine_tuning/jobs", body);
  }

  getJob(id: string): Promise<JobJson> {
    return this.call("GET", `/fine_tuning/jobs/${encodeURIComponent(id)}`);
  }

  async listJobs(limit: number): Promise<JobJson[]> {
    return (await this.call<ListJson<JobJson>>("GET", `/fine_tuning/jobs?limit=${limit}`)).data;
  }

  cancelJob(id: string): Promise<JobJson> {
    return this.call("POST", `/fine_tuning/jobs/${encodeURIComponent(id)}/cancel`);
  }

  /** One page of the job's events, newest first, starting after the event `after`. */
  events(id: string, after?: string): Promise<ListJson<EventJson>> {
    const query = after === undefined ? "" : `&after=${encodeURIComponent(after)}`;
    return this.call("GET", `/fine_tuning/jobs/${encodeURIComponent(id)}/events?limit=100${query}`);
  }

  /** Uploads an evaluation test set (JSONL); the server validates every line. */
  uploadEvalDataset(bytes: Uint8Array, filename: string): Promise<EvalDatasetJson> {
    const form = new FormData();
    form.set("file", new Blob([new Uint8Array(bytes)]), filename);
    return this.call("POST", "/evals/datasets", form);
  }

  createEvalRun(body: { dataset: string; arms?: Array<{ strategy: string }>; seed?: number }): Promise<EvalRunJson> {
    return this.call("POST", "/evals/runs", body);
  }

  getEvalRun(id: string): Promise<EvalRunJson> {
    return this.call("GET", `/evals/runs/${encodeURIComponent(id)}`);
  }

  cancelEvalRun(id: string): Promise<EvalRunJson> {
    return this.call("POST", `/evals/runs/${encodeURIComponent(id)}/cancel`);
  }

  evalReport(id: string): Promise<EvalReport> {
    return this.call("GET", `/evals/runs/${encodeURIComponent(id)}/report`);
  }

  /** The report page (HTML, not JSON). */
  async evalReportHtml(id: string): Promise<string> {
    const path = `/evals/runs/${encodeURIComponent(id)}/report.html`;
    const res = await this.send("GET", `${this.baseUrl}/v1${path}`, { method: "GET", headers: { authorization: `Bearer ${this.key}` } });
    if (!res.ok) throw new ApiRequestError(res.status, `the server answered GET ${path} with HTTP ${res.status}`, null, null);
    return res.text();
  }

  /** The node's base model: the one entry of /v1/models without a parent. */
  async baseModel(): Promise<string> {
    const { data } = await this.call<{ data: Array<{ id: string; parent: string | null }> }>("GET", "/models");
    const base = data.find((m) => m.parent === null);
    if (!base) throw new ApiRequestError(500, `the server at ${this.baseUrl} lists no base model`, null, null);
    return base.id;
  }

  /**
   * fetch, with a connection failure explained. A GET is retried a few times: a kept-alive socket the
   * server closed as it was reused fails with ECONNRESET, and following a job must not end on that.
   */
  private async send(method: string, url: string, init: RequestInit): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fetch(url, init);
      } catch (err) {
        if (method !== "GET" || attempt >= GET_ATTEMPTS) {
          throw new ServerUnreachableError(`cannot reach the switchyard server at ${this.baseUrl}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }

  private async call<T>(method: string, path: string, body?: FormData | object): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    let payload: BodyInit | undefined;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await this.send(method, `${this.baseUrl}/v1${path}`, { method, headers, body: payload });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiRequestError(res.status, `the server at ${this.baseUrl} answered ${method} ${path} with HTTP ${res.status} and no JSON`, null, null);
    }
    if (!res.ok) {
      const error = (json as { error?: { message?: string; code?: string | null; param?: string | null } }).error;
      throw new ApiRequestError(res.status, error?.message ?? `HTTP ${res.status}`, error?.code ?? null, error?.param ?? null);
    }
    return json as T;
  }
}
