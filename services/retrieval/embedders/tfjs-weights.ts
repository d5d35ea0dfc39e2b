import { readFileSync } from "node:fs";
import { join } from "node:path";

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: "float32" | "int32";
}

interface ModelJson {
  weightsManifest: Array<{ paths: string[]; weights: WeightSpec[] }>;
}

export interface TfjsWeight {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Reads the weights of a TF.js graph model (model.json + binary shards) by name. */
export function readTfjsWeights(dir: string): Map<string, TfjsWeight> {
  const model = JSON.parse(readFileSync(join(dir, "model.json"), "utf8")) as ModelJson;
  const weights = new Map<string, TfjsWeight>();
  for (const group of model.weightsManifest) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dir, p))));
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.dtype !== "float32" && spec.dtype !== "int32") throw new Error(`weight ${spec.name}: unsupported dtype ${spec.dtype}`);
      const count = spec.shape.reduce((a, b) => a * b, 1);
      // Copy into an aligned buffer: shard offsets need not be multiples of 4 in general.
      const copy = new Uint8Array(bytes.subarray(offset, offset + 4 * count)).buffer;
      weights.set(spec.name, { shape: spec.shape, data: spec.dtype === "float32" ? new Float32Array(copy) : new Int32Array(copy) });
      offset += 4 * count;
    }
    if (offset !== bytes.length) throw new Error(`model.json weights take ${offset} bytes but the shards hold ${bytes.length}`);
  }
  return weights;
}
