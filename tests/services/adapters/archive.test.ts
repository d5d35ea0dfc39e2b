import { describe, expect, it } from "vitest";
import { zipSync } from "fflate";
import { extractAdapterArchive } from "../../../services/adapters/archive.ts";
import { randomPeftAdapter } from "../../../services/adapters/synthetic.ts";
import { refusal, STORIES, tarGzOf, utf8, zipOf } from "../../helpers/adapters.ts";

const MB = 1 << 20;
const adapter = randomPeftAdapter(STORIES, { targets: ["q_proj", "v_proj"] }).files;

describe("adapter archives", () => {
  it("reads a zip with the files at the root or in one folder, ignoring other files", async () => {
    const flat = await extractAdapterArchive(zipOf({ "adapter_config.json": adapter.config, "adapter_model.safetensors": adapter.model }), MB);
    expect(flat.model).toEqual(adapter.model);
    const nested = await extractAdapterArchive(
      zipOf({ "my-lora/adapter_config.json": adapter.config, "my-lora/adapter_model.safetensors": adapter.model, "my-lora/README.md": utf8("hi") }),
      MB,
    );
    expect(nested.config).toEqual(adapter.config);
  });

  it("reads a tar.gz", async () => {
    const bytes = await tarGzOf([
      { name: "out/", type: "directory" },
      { name: "out/adapter_config.json", data: adapter.config },
      { name: "out/adapter_model.safetensors", data: adapter.model },
    ]);
    const files = await extractAdapterArchive(bytes, MB);
    expect(files.model).toEqual(adapter.model);
  });

  it("refuses path traversal and absolute entries in zips and tars", async () => {
    const traversal = zipOf({ "../../etc/adapter_config.json": adapter.config, "adapter_model.safetensors": adapter.model });
    const e = await refusal(extractAdapterArchive(traversal, MB));
    expect(e.reason).toBe("unsafe_archive_entry");
    expect(e.message).toMatch(/"\.\.\/\.\.\/etc\/adapter_config\.json" is refused: path traversal/);
    const hidden = zipOf({ "adapter_config.json": adapter.config, "adapter_model.safetensors": adapter.model, "x/../../notes.txt": utf8("x") });
    expect((await refusal(extractAdapterArchive(hidden, MB))).reason).toBe("unsafe_archive_entry");
    const absolute = await tarGzOf([{ name: "/tmp/adapter_config.json", data: adapter.config }]);
    expect((await refusal(extractAdapterArchive(absolute, MB))).message).toMatch(/absolute paths are not allowed/);
  });

  it("refuses an archive that holds the same file twice", async () => {
    const twice = await tarGzOf([
      { name: "adapter_config.json", data: adapter.config },
      { name: "adapter_model.safetensors", data: adapter.model },
      { name: "./adapter_model.safetensors", data: utf8("something else") },
    ]);
    expect((await refusal(extractAdapterArchive(twice, MB))).message).toMatch(/"adapter_model\.safetensors" more than once/);
  });

  it("refuses symbolic links", async () => {
    const tarLink = await tarGzOf([{ name: "adapter_model.safetensors", type: "symlink", linkname: "/etc/shadow" }]);
    expect((await refusal(extractAdapterArchive(tarLink, MB))).message).toMatch(/links are not allowed/);
    const zipLink = zipSync({
      "adapter_config.json": adapter.config,
      "adapter_model.safetensors": [utf8("/etc/shadow"), { os: 3, attrs: (0o120777 << 16) >>> 0 }],
    });
    expect((await refusal(extractAdapterArchive(zipLink, MB))).message).toMatch(/symbolic links are not allowed/);
  });

  it("stops a zip bomb at the decompressed-size limit", async () => {
    const huge = new Uint8Array(64 * MB); // deflates to ~64 KB
    const bomb = zipSync({ "adapter_config.json": adapter.config, "adapter_model.safetensors": huge }, { level: 9 });
    expect(bomb.byteLength).toBeLessThan(MB);
    const e = await refusal(extractAdapterArchive(bomb, 4 * MB));
    expect(e.reason).toBe("too_large");
    expect(e.message).toMatch(/4194304 bytes/);
  });

  it("stops a gzip bomb and refuses an oversize upload", async () => {
    const bomb = await tarGzOf([{ name: "adapter_model.safetensors", data: new Uint8Array(16 * MB) }]);
    expect((await refusal(extractAdapterArchive(bomb, 2 * MB))).reason).toBe("too_large");
    const big = zipOf({ "adapter_config.json": adapter.config, "adapter_model.safetensors": adapter.model });
    expect((await refusal(extractAdapterArchive(big, 100))).reason).toBe("too_large");
  });

  it("refuses pickle weights, missing files and non-archives", async () => {
    const pickle = zipOf({ "adapter_config.json": adapter.config, "adapter_model.bin": utf8("\x80\x04pickle") });
    const e = await refusal(extractAdapterArchive(pickle, MB));
    expect(e.code).toBe("unsafe_format");
    expect(e.message).toMatch(/pickle .* convert it to adapter_model\.safetensors/);
    expect((await refusal(extractAdapterArchive(zipOf({ "adapter_model.safetensors": adapter.model }), MB))).code).toBe("missing_file");
    expect((await refusal(extractAdapterArchive(utf8("hello world"), MB))).code).toBe("invalid_archive");
  });

  it("refuses a zip whose data does not match its checksum", async () => {
    const zip = zipSync({ "adapter_config.json": adapter.config, "adapter_model.safetensors": adapter.model }, { level: 0 });
    const at = Buffer.from(zip).indexOf(Buffer.from(adapter.model.subarray(0, 16))) + 200;
    zip[at] ^= 0xff;
    expect((await refusal(extractAdapterArchive(zip, MB))).message).toMatch(/checksum mismatch/);
  });
});
