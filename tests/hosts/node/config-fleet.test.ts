/** The inference and retrieval node lists: comma-separated in the environment or a flag, the flag repeatable, each entry a URL. */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../hosts/node/config.ts";

describe("--inference-url", () => {
  it("takes a comma-separated list or repeated flags, in order, and the fleet settings' defaults", () => {
    expect(loadConfig({ SWITCHYARD_INFERENCE_URL: "http://a:1, http://b:2,,http://c:3" }).inferenceUrl).toEqual(["http://a:1", "http://b:2", "http://c:3"]);
    const config = loadConfig({}, ["--inference-url", "http://a:1", "--inference-url=http://b:2,http://c:3"]);
    expect(config.inferenceUrl).toEqual(["http://a:1", "http://b:2", "http://c:3"]);
    expect({ routing: config.fleetRouting, interval: config.fleetCheckIntervalMs, spill: config.fleetSpillQueue }).toEqual({ routing: "rendezvous", interval: 2000, spill: 16 });
    expect(loadConfig({}).inferenceUrl).toBeUndefined();
    // Other flags keep "the last one wins".
    expect(loadConfig({}, ["--port", "1", "--port", "2"]).port).toBe(2);
  });

  it("refuses an entry that is not an http(s) URL, and an unknown routing", () => {
    expect(() => loadConfig({ SWITCHYARD_INFERENCE_URL: "http://a:1,ftp://b" })).toThrow(ConfigError);
    expect(() => loadConfig({ SWITCHYARD_INFERENCE_URL: "," })).toThrow(/SWITCHYARD_INFERENCE_URL/);
    expect(() => loadConfig({ SWITCHYARD_FLEET_ROUTING: "round-robin" })).toThrow(/SWITCHYARD_FLEET_ROUTING/);
  });
});

describe("--retrieval-url", () => {
  it("takes one URL or a list, like --inference-url, and refuses an entry that is not a URL", () => {
    expect(loadConfig({ SWITCHYARD_RETRIEVAL_URL: "http://r0:9102" }).retrievalUrl).toEqual(["http://r0:9102"]);
    expect(loadConfig({}, ["--retrieval-url", "http://r0:9102", "--retrieval-url=http://r1:9102"]).retrievalUrl).toEqual(["http://r0:9102", "http://r1:9102"]);
    expect(() => loadConfig({ SWITCHYARD_RETRIEVAL_URL: "http://r0:9102,r1" })).toThrow(/SWITCHYARD_RETRIEVAL_URL/);
  });
});
