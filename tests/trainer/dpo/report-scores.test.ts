/**
 * The DPO report's numbers (trainer/dpo/report-scores.ts), pure: where the pair's answers part, how an
 * answer leans (ROUGE-L F to the chosen minus to the rejected), where the adapter's answer moved, and the
 * summary counts from the pairs.
 */
import { describe, expect, it } from "vitest";
import { buildPreferenceReport, movement, preferenceScore, sharedLead } from "../../../trainer/dpo/report-scores.ts";

const pair = (n: number) => ({ line: n, messages: [{ role: "user" as const, content: `How did P${n} feel?` }], chosen: `P${n} was very happy and smiled.`, rejected: `P${n} was very sad and cried.` });

describe("the DPO report's scores", () => {
  it("finds the shared lead of the two answers, never the whole of one", () => {
    expect(sharedLead("Kate was very happy and smiled.", "Kate was very sad and cried.")).toBe("Kate was very");
    expect(sharedLead("Yes.", "No.")).toBe("");
    expect(sharedLead("a b", "a b c")).toBe("a");
  });

  it("reads leaning and movement by ROUGE-L to the chosen minus to the rejected", () => {
    const { chosen, rejected } = pair(1);
    expect(preferenceScore(chosen, chosen, rejected)).toBeGreaterThan(0);
    expect(preferenceScore(rejected, chosen, rejected)).toBeLessThan(0);
    expect(preferenceScore("P1 was very small and scary", chosen, rejected)).toBe(0);
    expect(movement({ base: "P1 was very small", adapter: "P1 was very happy" }, chosen, rejected)).toBe("chosen");
    expect(movement({ base: "P1 was very happy", adapter: "P1 was very sad" }, chosen, rejected)).toBe("rejected");
    expect(movement({ base: "P1 was very", adapter: "P1 was very" }, chosen, rejected)).toBe("none");
    expect(movement(undefined, chosen, rejected)).toBe("none");
  });

  it("counts from the pairs: margins, shares, leaning and moves; unanswered pairs count for neither", () => {
    const pairs = [pair(1), pair(2), pair(3), pair(4)];
    const answers = [{ base: "P1 was very small", adapter: "P1 was very happy and smiled." }, { base: "P2 was very happy", adapter: "P2 was very sad" }, { base: "P3 was very", adapter: "P3 was very" }, undefined];
    const r = buildPreferenceReport({ pairs, margins: [2, -1, 0.5, 3], answers, bestStep: 7, reference: { loss: Math.log(2), tokenAccuracy: 0 }, adapter: { loss: 0.2, tokenAccuracy: 0.75 } });
    expect(r).toMatchObject({ method: "dpo", validationPairs: 4, answeredPairs: 3, bestStep: 7, meanMargin: 4.5 / 4, preferredShare: 0.75, baseLeansChosen: 1, adapterLeansChosen: 1, movedTowardChosen: 1, movedTowardRejected: 1 });
    expect(r.reference).toEqual({ loss: Math.log(2), rewardAccuracy: 0 });
    expect(r.pairs.map((p) => p.moved)).toEqual(["chosen", "rejected", "none", "none"]);
    expect(r.pairs[3]).toMatchObject({ prompt: "How did P4 feel?", margin: 3, base: null, adapter: null });
    expect(() => buildPreferenceReport({ pairs, margins: [1], answers, bestStep: 0, reference: { loss: 1, tokenAccuracy: 0 }, adapter: { loss: 1, tokenAccuracy: 0 } })).toThrow(/1 margins for 4/);
  });
});
