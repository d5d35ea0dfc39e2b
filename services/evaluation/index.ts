import type { Evaluation } from "../../ports/evaluation.ts";
import { PlaneError } from "../../ports/errors.ts";
import { MetricInputError, scoreAnswer } from "./metrics.ts";

/** The evaluation port in process: the metrics are plain TypeScript, so every host can run them. */
export const inProcessEvaluation: Evaluation = {
  async score(answer, reference, context) {
    try {
      return scoreAnswer(answer, reference, context);
    } catch (e) {
      throw e instanceof MetricInputError ? new PlaneError("invalid_request", e.message, { param: "reference" }) : e;
    }
  },
};
