import { createEngine } from "../services/inference/engine.ts";
const engine = await createEngine({ modelDir: process.env.HF!, cacheDir: "/work/tmp/cache-s1", verifyWeights: false });
const p = { maxTokens: 400, temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, stop: [] };
for (let r = 0; r < 3; r++) {
  let done: { timings: { totalMs: number; firstTokenMs: number }; completionTokens: number } | undefined;
  for await (const e of engine.generate({ promptTokens: [1], params: p })) if (e.type === "done") done = e as never;
  console.log("tok/s", ((done!.completionTokens - 1) / ((done!.timings.totalMs - done!.timings.firstTokenMs) / 1000)).toFixed(0), done!.completionTokens);
}
await engine.close();
