/**
 * The allocator setting a serving process starts with (hosts/node/allocator-env.ts): onnxruntime's freed
 * activations go back to the system with it and stay in the process without it, and every way the platform
 * is started sets it.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { SERVING_ALLOCATOR_ENV } from "../../../hosts/node/allocator-env.ts";
import { Graph } from "../../../services/model/graph/ir.ts";
import { emitOnnx } from "../../../services/model/graph/onnx.ts";

const ROOT = join(import.meta.dirname, "../../..");
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "allocator-env-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** sum(expand(x, [n]) + 1): two activations of n floats inside one run, none outside it. */
function modelWithLargeActivations(): string {
  const g = new Graph("large-activations");
  const x = g.input("x", "float32", [1]);
  const n = g.input("n", "int64", [1]);
  g.output(g.reduceSum(g.add(g.expand(x, n), g.constFloat([1], [])), [0], false), "sum");
  const path = join(dir, "large-activations.onnx");
  writeFileSync(path, emitOnnx(g).model);
  return path;
}

/**
 * A child process that runs the model once with 16 MiB activations, then with 8 MiB ones (below the threshold
 * glibc raised to 16 MiB after the first), and prints how much more anonymous memory it holds than before.
 */
const CHILD = `
import * as ort from "onnxruntime-node";
import { readFileSync } from "node:fs";
const anonymousKiB = () => Number(/^Pss_Anon:\\s+(\\d+)/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"))[1]);
const session = await ort.InferenceSession.create(process.argv[1], { intraOpNumThreads: 1, enableCpuMemArena: false });
const x = new ort.Tensor("float32", new Float32Array([2]), [1]);
const runWith = (floats) => session.run({ x, n: new ort.Tensor("int64", new BigInt64Array([BigInt(floats)]), [1]) });
await runWith(16);
const before = anonymousKiB();
await runWith(4 << 20);
await runWith(2 << 20);
console.log(JSON.stringify({ heldMiB: (anonymousKiB() - before) / 1024 }));
`;

async function heldAfterRuns(setting: boolean): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(setting ? SERVING_ALLOCATOR_ENV : {}) };
  if (!setting) for (const name of Object.keys(SERVING_ALLOCATOR_ENV)) delete env[name];
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", CHILD, modelWithLargeActivations()], { cwd: ROOT, env });
  return (JSON.parse(stdout.trim().split("\n").at(-1)!) as { heldMiB: number }).heldMiB;
}

describe("the serving allocator setting", () => {
  it.runIf(process.platform === "linux")("gives onnxruntime's freed activations back, which glibc keeps by default", async () => {
    const withSetting = await heldAfterRuns(true);
    const withoutSetting = await heldAfterRuns(false);
    expect(withoutSetting).toBeGreaterThan(6); // the two 8 MiB activations stayed in the heap
    expect(withSetting).toBeLessThan(2);
  });

  it("is what `npm start` and the container images start with", () => {
    const assignments = Object.entries(SERVING_ALLOCATOR_ENV).map(([name, value]) => `${name}=${value}`);
    const start = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts.start;
    for (const assignment of assignments) expect(start).toContain(`${assignment} node bin/switchyard.mjs start`);
    const dockerfile = readFileSync(join(ROOT, "infra/docker/Dockerfile"), "utf8");
    const runtimeStages = dockerfile.split(/^FROM /m).filter((stage) => /\bAS runtime/.test(stage.split("\n")[0]!));
    expect(runtimeStages).toHaveLength(2); // CPU and CUDA
    for (const stage of runtimeStages) for (const assignment of assignments) expect(stage).toContain(assignment);
  });
});
