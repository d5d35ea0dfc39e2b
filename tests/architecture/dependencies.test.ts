import { readdirSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { checkImports, importSpecifiers, type SourceFile } from "./import-rules.ts";

const ROOT = join(import.meta.dirname, "../..");

function sourcesUnder(folder: string): SourceFile[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: "utf8" })
    .filter((name) => /\.(ts|mts|js|mjs)$/.test(name) && !name.split(sep).includes("node_modules"))
    .map((name) => {
      const path = join(ROOT, folder, name);
      return { path: relative(ROOT, path).split(sep).join("/"), source: readFileSync(path, "utf8") };
    });
}

describe("dependency rules", () => {
  const files = ["edge", "services", "ports", "trainer", "clients"].flatMap(sourcesUnder);

  it("edge/ imports only edge/, ports/ and runtime-agnostic packages; services/ never edge/ or hosts/, and its modules one way; ports/ only ports/; clients/ only clients/ and ports/", () => {
    expect(files.filter((f) => f.path.startsWith("edge/")).length).toBeGreaterThan(20);
    expect(files.filter((f) => f.path.startsWith("clients/")).length).toBeGreaterThan(3);
    expect(checkImports(files)).toEqual([]);
  });

  it("reports a bad import of every kind (the checker can fail)", () => {
    const bad: SourceFile[] = [
      {
        path: "edge/routes/bad.ts",
        source: [
          `/// <reference types="node" />`,
          `import { readFile } from "node:fs/promises";`,
          `import type {`,
          `  Server,`,
          `} from "http";`,
          `import { pino } from "pino";`,
          `export { openDatabase } from "../../services/store/db.ts";`,
          `import "../../hosts/node/server.ts";`,
          `const lazy = await import("@hono/node-server");`,
        ].join("\n"),
      },
      { path: "services/store/bad.ts", source: `import type { AppEnv } from "../../edge/env.ts";\nimport { x } from "../../hosts/node/config.ts";` },
      { path: "trainer/bad.ts", source: `import { createEdge } from "../edge/edge.ts";` },
      { path: "services/inference/bad.ts", source: `import type { AdapterCache } from "../adapters/cache.ts";\nimport { openWeights } from "../model/safetensors.ts";` },
      { path: "ports/bad.ts", source: `import { z } from "zod";\nimport type { Tenant } from "../services/store/schema.ts";` },
      { path: "clients/bad.ts", source: `import { z } from "zod";\nimport { request } from "node:http";\nimport { listen } from "../hosts/node/server.ts";` },
      { path: "edge/bad-client.ts", source: `import { HttpInference } from "../clients/inference.ts";` },
    ];
    expect(checkImports(bad).map((v) => `${v.file} -> ${v.specifier}`)).toEqual([
      "edge/routes/bad.ts -> node",
      "edge/routes/bad.ts -> node:fs/promises",
      "edge/routes/bad.ts -> http",
      "edge/routes/bad.ts -> pino",
      "edge/routes/bad.ts -> ../../services/store/db.ts",
      "edge/routes/bad.ts -> ../../hosts/node/server.ts",
      "edge/routes/bad.ts -> @hono/node-server",
      "services/store/bad.ts -> ../../edge/env.ts",
      "services/store/bad.ts -> ../../hosts/node/config.ts",
      "trainer/bad.ts -> ../edge/edge.ts",
      "services/inference/bad.ts -> ../adapters/cache.ts",
      "ports/bad.ts -> zod",
      "ports/bad.ts -> ../services/store/schema.ts",
      "clients/bad.ts -> zod",
      "clients/bad.ts -> node:http",
      "clients/bad.ts -> ../hosts/node/server.ts",
      "edge/bad-client.ts -> ../clients/inference.ts",
    ]);
  });

  it("passes what the rules allow and ignores imports in comments", () => {
    const good: SourceFile[] = [
      {
        path: "edge/routes/good.ts",
        source: [
          `import { Hono } from "hono";`,
          `import type { ContentfulStatusCode } from "hono/utils/http-status";`,
          `import { z } from "zod";`,
          `import type { Planes } from "../../ports/index.ts";`,
          `import { ApiError } from "../errors.ts";`,
          `// import { readFile } from "node:fs";`,
          `/** Like import("node:path") would. */`,
          `const url = "https://example.com/x"; // import "pino"`,
        ].join("\n"),
      },
      { path: "services/store/good.ts", source: `import { sql } from "drizzle-orm";\nimport { join } from "node:path";\nimport { PlaneError } from "../../ports/errors.ts";` },
      { path: "ports/good.ts", source: `import type { Tenant } from "./tenants.ts";` },
      { path: "clients/wire/good.ts", source: `import { PlaneError } from "../../ports/errors.ts";\nimport { readNdjson } from "./ndjson.ts";` },
    ];
    expect(checkImports(good)).toEqual([]);
  });
});
