import { describe, expect, it } from "vitest";
import { blockOf, LORA_TARGETS, loraInputName, loraModuleName, projectionShape } from "../../../services/model/lora-layout.ts";
import { hfShape, randomWeights, TINY_VARIANTS } from "../../helpers/tiny-model.ts";

describe.each(Object.entries(TINY_VARIANTS))("LoRA layout: %s", (_, config) => {
  const weights = randomWeights(config, 1);

  it("names every target's weight in the model and gives its [out, in] shape", () => {
    for (let layer = 0; layer < config.numLayers; layer++) {
      for (const target of LORA_TARGETS) {
        const name = `${loraModuleName(layer, target)}.weight`;
        expect(weights.has(name), name).toBe(true);
        const { in: inSize, out } = projectionShape(config, target);
        expect(hfShape(config, name)).toEqual([out, inSize]);
      }
    }
  });
});

describe("LoRA layout", () => {
  it("puts q/k/v/o in self_attn and gate/up/down in mlp, and names the graph inputs", () => {
    expect(LORA_TARGETS.map(blockOf)).toEqual(["self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"]);
    expect(loraInputName(3, "down_proj", "b")).toBe("lora.3.down_proj.b");
  });
});
