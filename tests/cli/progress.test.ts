import { describe, expect, it } from "vitest";
import { captureStream } from "../helpers/capture-stream.ts";
import { createProgressReporter, downloadProgress, formatBytes } from "../../cli/progress.ts";

const capture = (isTTY: boolean) => captureStream(isTTY, 100);

describe("CLI progress", () => {
  it("prints plain percentage lines every 10% when not on a terminal", () => {
    const out = capture(false);
    const reporter = createProgressReporter(out.stream);
    const report = downloadProgress(reporter);
    for (let received = 0; received <= 2048; received += 256) report({ file: "model.safetensors", received, total: 2048 });
    report({ file: "config.json", received: 500 });
    reporter.stop();
    const lines = out.text().trim().split("\n");
    expect(lines[0]).toBe("model.safetensors: 0% (0 B of 2.0 KiB)");
    expect(lines).toContain("model.safetensors: 50% (1.0 KiB of 2.0 KiB)");
    expect(lines.at(-2)).toBe("model.safetensors: 100% (2.0 KiB of 2.0 KiB)");
    // 0, 10 (256 B = 12.5%), 20, 30, 50, 60, 70, 80, 100: one per crossed tenth; then the untotalled file.
    expect(lines.slice(0, -1).length).toBe(9);
    expect(lines.at(-1)).toBe("config.json: 500 B");
  });

  it("reports a task without a total when it ends", () => {
    const out = capture(false);
    const reporter = createProgressReporter(out.stream);
    reporter.update("tokenizer.json", 100);
    reporter.update("tokenizer.json", 3 * 1024 * 1024);
    reporter.stop();
    expect(out.text()).toBe("tokenizer.json: 3.0 MiB\n");
  });

  it("counts plain items when asked", () => {
    const out = capture(false);
    const reporter = createProgressReporter(out.stream, { unit: "count" });
    reporter.update("documents", 3, 3);
    expect(out.text()).toBe("documents: 100% (3 of 3)\n");
  });

  it("draws a bar on a terminal", () => {
    const out = capture(true);
    const reporter = createProgressReporter(out.stream);
    reporter.update("model.safetensors", 512, 1024);
    reporter.update("model.safetensors", 1024, 1024);
    reporter.stop();
    expect(out.text()).toMatch(/model\.safetensors \[[█░]+\] 100% \| 1\.0 KiB\/1\.0 KiB/);
  });

  it("formats byte counts", () => {
    expect([0, 1023, 1024, 1536, 5 * 1024 ** 3].map(formatBytes)).toEqual(["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 GiB"]);
  });
});
