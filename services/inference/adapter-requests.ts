/**
 * How many requests of each adapter are waiting for a batch slot and how many are running (prefill
 * or decode), the counts behind vLLM's `lora_requests_info` gauge. A request counts as waiting from
 * submit until its first prompt chunk runs, then as running until its sequence ends; base-model
 * requests are not counted (vLLM lists adapters only).
 */
export interface AdapterRequests {
  /** Adapter ids with a running request, each once. */
  running: string[];
  /** Adapter ids with a waiting request, each once. */
  waiting: string[];
}

export class AdapterRequestTally {
  private readonly waiting = new Map<string, number>();
  private readonly running = new Map<string, number>();

  submitted(id: string): void {
    bump(this.waiting, id, 1);
  }

  started(id: string): void {
    bump(this.waiting, id, -1);
    bump(this.running, id, 1);
  }

  /** The request left the engine (finished, failed, cancelled or refused); `started`: whether it had run. */
  ended(id: string, started: boolean): void {
    bump(started ? this.running : this.waiting, id, -1);
  }

  snapshot(): AdapterRequests {
    return { running: [...this.running.keys()], waiting: [...this.waiting.keys()] };
  }
}

function bump(counts: Map<string, number>, id: string, by: number): void {
  const n = (counts.get(id) ?? 0) + by;
  if (n > 0) counts.set(id, n);
  else counts.delete(id);
}
