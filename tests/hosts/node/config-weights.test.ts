/** SWITCHYARD_WEIGHTS / --weights: the base model's serving format, f32 unless set, one of three. */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../hosts/node/config.ts";

describe("--weights", () => {
  it("defaults to f32; the environment sets it and the flag wins", () => {
    expect(loadConfig({}).weights).toBe("f32");
    expect(loadConfig({ SWITCHYARD_WEIGHTS: "int8" }).weights).toBe("int8");
    expect(loadConfig({ SWITCHYARD_WEIGHTS: "int8" }, ["--weights", "int4"]).weights).toBe("int4");
  });

  it("refuses another format, naming the variable", () => {
    expect(() => loadConfig({ SWITCHYARD_WEIGHTS: "q4_0" })).toThrow(ConfigError);
    expect(() => loadConfig({ SWITCHYARD_WEIGHTS: "int3" })).toThrow(/SWITCHYARD_WEIGHTS="int3"/);
    expect(() => loadConfig({}, ["--weights=fp16"])).toThrow(/--weights/);
  });
});
