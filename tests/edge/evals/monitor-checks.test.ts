/**
 * The pure parts of monitoring: a check's means and alerts on constructed results (errored items
 * count 0, thresholds, a significant regression against the baseline and a drop too small or too
 * noisy to be one), the webhook signature (a Stripe-style HMAC over "t.body", checked against
 * node:crypto; tampered bodies, wrong secrets and stale timestamps refused), and the drift statistic.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { evaluateCheck } from "../../../edge/monitoring/checks.ts";
import { centroid, centroidDrift, trainingPrompts } from "../../../edge/monitoring/drift.ts";
import { signatureHeader, verifySignature } from "../../../edge/monitoring/webhook.ts";
import type { EvalResult } from "../../../ports/evals.ts";

const result = (item: number, tokenF1: number | null, adapter = "a@1"): EvalResult => ({
  item,
  arm: 0,
  promptTokens: 1,
  completionTokens: 1,
  ttftMs: 0,
  totalMs: 0,
  sources: [],
  adapter,
  ...(tokenF1 === null ? { error: { code: "model_not_found", message: "gone" }, scores: {} } : { answer: "x", scores: { tokenF1 } }),
});
const run = (scores: (number | null)[], adapter?: string) => scores.map((s, i) => result(i, s, adapter));

describe("evaluateCheck", () => {
  const monitor = { metrics: ["tokenF1"], thresholds: { tokenF1: 0.5 } };

  it("averages with errored items as 0 and raises a threshold alert below the threshold", () => {
    const out = evaluateCheck(monitor, run([0.9, 0.6, null, 0.5]), undefined, 1);
    expect(out.metrics).toEqual({ tokenF1: 0.5, errorRate: 0.25 });
    expect(out.alerts).toEqual([]); // 0.5 is not below 0.5
    const low = evaluateCheck(monitor, run([0.4, 0.4, null, 0.5]), undefined, 1);
    expect(low.alerts).toEqual([expect.objectContaining({ kind: "threshold", metric: "tokenF1", value: 1.3 / 4, threshold: 0.5 })]);
  });

  it("raises a regression when every item drops (exact sign-flip p = 2/2^8) and not for a mixed, small change", () => {
    const baseline = run([0.9, 0.8, 0.95, 0.85, 0.9, 0.7, 0.8, 0.9]);
    const worse = evaluateCheck({ metrics: ["tokenF1"], thresholds: {} }, run([0.3, 0.2, 0.5, 0.1, 0.4, 0.2, 0.3, 0.35], "b@1"), baseline, 7);
    expect(worse.adapter).toBe("b@1");
    expect(worse.alerts).toHaveLength(1);
    expect(worse.alerts[0]).toMatchObject({ kind: "regression", metric: "tokenF1", p: 2 / 256 });
    expect(worse.alerts[0]!.baseline).toBeCloseTo(0.85, 12);

    const mixed = evaluateCheck({ metrics: ["tokenF1"], thresholds: {} }, run([0.95, 0.7, 0.9, 0.9, 0.85, 0.75, 0.8, 0.85]), baseline, 7);
    expect(mixed.alerts).toEqual([]);
    // Only 3 items: even all dropping gives p = 2/8, never significant.
    expect(evaluateCheck({ metrics: ["tokenF1"], thresholds: {} }, run([0, 0, 0]), baseline.slice(0, 3), 7).alerts).toEqual([]);
  });
});

describe("webhook signatures", () => {
  const secret = "whsec_test_secret_0123456789";
  const body = JSON.stringify({ type: "monitor.alert", alerts: [{ id: "a" }] });

  it("are HMAC-SHA256 over 't.body', hex, as node:crypto computes them", async () => {
    const header = await signatureHeader(secret, 1_700_000_000, body);
    expect(header).toBe(`t=1700000000,v1=${createHmac("sha256", secret).update(`1700000000.${body}`).digest("hex")}`);
  });

  it("verify only the same body, secret and a fresh timestamp", async () => {
    const header = await signatureHeader(secret, 1_700_000_000, body);
    expect(await verifySignature(secret, header, body, 1_700_000_100)).toBe(true);
    expect(await verifySignature(secret, header, `${body} `, 1_700_000_100)).toBe(false);
    expect(await verifySignature("whsec_other", header, body, 1_700_000_100)).toBe(false);
    expect(await verifySignature(secret, header, body, 1_700_000_000 + 301)).toBe(false);
    expect(await verifySignature(secret, header.replace("t=1700000000", "t=1700000050"), body, 1_700_000_100)).toBe(false);
    expect(await verifySignature(secret, "t=1,v1=zz", body, 1)).toBe(false);
  });
});

describe("input drift", () => {
  const v = (...xs: number[]) => Float32Array.from(xs);

  it("is 1 − cosine of the normalised centroids: 0 for the same direction, 1 for orthogonal ones", () => {
    const train = centroid([v(1, 0), v(2, 0)])!;
    expect(centroidDrift(centroid([v(5, 0)])!, train)).toBeCloseTo(0, 12);
    expect(centroidDrift(centroid([v(0, 3)])!, train)).toBeCloseTo(1, 12);
    // Normalised first: a long vector does not outweigh a short one.
    expect(Array.from(centroid([v(10, 0), v(0, 1)])!)).toEqual([0.5, 0.5]);
    expect(centroid([v(0, 0)])).toBeUndefined();
  });

  it("reads the last user message of each training line", () => {
    const jsonl = [
      JSON.stringify({ messages: [{ role: "system", content: "s" }, { role: "user", content: "first" }, { role: "assistant", content: "a" }, { role: "user", content: "second" }, { role: "assistant", content: "b" }] }),
      "",
      JSON.stringify({ messages: [{ role: "user", content: "third" }, { role: "assistant", content: "c" }] }),
    ].join("\n");
    expect(trainingPrompts(jsonl)).toEqual(["second", "third"]);
    expect(trainingPrompts(jsonl, 1)).toEqual(["second"]);
  });
});
