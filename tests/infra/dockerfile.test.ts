/**
 * The container image's Dockerfile (infra/docker/Dockerfile), linted since no container runtime runs here:
 * parsed with dockerfile-ast, then hadolint-style rules that matter for this image (pinned base tags, a
 * numeric non-root USER before the command, `npm ci` with production dependencies only, explicit owners on
 * COPY, a HEALTHCHECK, apt hygiene), and cross-checks against the repository: every COPY source exists and
 * passes .dockerignore, every folder the runtime code imports from is copied, every package it imports is
 * a production dependency, and the ENV names are settings the code reads.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { describe, expect, it } from "vitest";
import { CONFIG_SOURCES, loadConfig } from "../../hosts/node/config.ts";
import { NODE_HEALTH } from "../../clients/wire/routes.ts";
import { healthRoutes } from "../../edge/routes/health.ts";
// @ts-expect-error: a plain .mjs script (no types); its one export is checked below.
import { healthTarget } from "../../infra/docker/healthcheck.mjs";

const root = resolve(import.meta.dirname, "../..");
const dockerfile = DockerfileParser.parse(readFileSync(join(root, "infra/docker/Dockerfile"), "utf8"));
const instructions = dockerfile.getInstructions();
const froms = dockerfile.getFROMs();
/** Each stage's instructions, by name; the runtime stages are named runtime* (the last, `runtime`, is the default target). */
const stages = new Map(froms.map((from, n) => [from.getBuildStage() ?? String(n), instructions.slice(instructions.indexOf(from), n + 1 < froms.length ? instructions.indexOf(froms[n + 1]) : undefined)]));
const runtimes = [...stages].filter(([name]) => name.startsWith("runtime"));
const stageNames = new Set(stages.keys());
const keyword = (i: Instruction) => i.getKeyword().toUpperCase();
const args = (i: Instruction) => i.getArguments().map((a) => a.getValue());
const copies = instructions.filter((i) => keyword(i) === "COPY" || keyword(i) === "ADD");
const flag = (i: Instruction, name: string) => ("getFlags" in i ? (i as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags() : []).find((f) => f.getName() === name)?.getValue();
const execForm = (i: Instruction) => JSON.parse(i.getArgumentsContent() ?? "null") as unknown;

/** The .dockerignore allowlist: `*`, then `!path` for each thing the image may copy. */
const allowed = readFileSync(join(root, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
const isAllowed = (path: string) => allowed.slice(1).some((entry) => {
  const p = entry.slice(1).replace(/\/$/, "");
  return path === p || path.startsWith(`${p}/`);
});

/** COPY sources from the build context (not --from another stage). */
const contextSources = copies.filter((c) => flag(c, "from") === undefined).flatMap((c) => args(c).slice(0, -1));
const copiedDirs = contextSources.filter((s) => existsSync(join(root, s)) && statSync(join(root, s)).isDirectory());

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mjs)$/.test(e.name) ? [path] : [];
  });
}

/** Every value import (type-only ones are erased) of the copied code, by file. */
const imports = copiedDirs.flatMap(sourceFiles).flatMap((file) => {
  const text = readFileSync(join(root, file), "utf8");
  const found = [...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm)];
  return found.map((m) => ({ file, spec: m[1] ?? m[2] }));
});

describe("infra/docker/Dockerfile", () => {
  it("parses into a multi-stage build whose base images are pinned to an exact version tag", () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) {
      if (stageNames.has(from.getImage() ?? "")) continue;
      expect(from.getImage(), "no build-time variables in FROM: the tag must be readable here").not.toMatch(/\$/);
      expect(from.getImageTag(), `${from.getImage()}`).toMatch(/^\d+\.\d+\.\d+-[a-z0-9.-]+$/);
      expect(from.getImageTag()).not.toContain("latest");
    }
    expect(froms[froms.length - 1].getBuildStage()).toBe("runtime");
    expect(runtimes.map(([name]) => name).sort()).toEqual(["runtime", "runtime-cuda"]);
    // Each runtime takes the app from the build stage (or one built on it), and nothing from the build context.
    for (const [name, stage] of runtimes) {
      const app = stage.find((i) => keyword(i) === "COPY" && args(i)[0] === "/app")!;
      expect(app, name).toBeDefined();
      let from = flag(app, "from")!;
      while (from !== "build") from = stages.get(from)![0].getArguments()[0].getValue();
      expect(stage.filter((i) => keyword(i) === "COPY").every((c) => flag(c, "from") !== undefined), name).toBe(true);
    }
  });

  it("installs with `npm ci`, production dependencies only, never `npm install`", () => {
    const runs = instructions.filter((i) => keyword(i) === "RUN").map((i) => i.getArgumentsContent() ?? "");
    expect(runs.some((r) => /\bnpm ci\b[^&;]*--omit=dev/.test(r))).toBe(true);
    for (const run of runs) expect(run).not.toMatch(/\bnpm (install|i|add)\b/);
    for (const run of runs.filter((r) => r.includes("apt-get install"))) {
      expect(run).toMatch(/apt-get update/);
      expect(run).toContain("--no-install-recommends");
      expect(run).toContain("rm -rf /var/lib/apt/lists/*");
    }
    expect(instructions.some((i) => keyword(i) === "ADD")).toBe(false);
  });

  it.each(runtimes)("%s runs as a numeric non-root user, set before the healthcheck and the command; every COPY names its owner", (_, stage) => {
    const users = stage.filter((i) => keyword(i) === "USER");
    expect(users).toHaveLength(1);
    const [uid] = args(users[0])[0].split(":");
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    const at = (k: string) => stage.findIndex((i) => keyword(i) === k);
    for (const k of ["HEALTHCHECK", "ENTRYPOINT", "CMD"]) expect(at(k), k).toBeGreaterThan(stage.indexOf(users[0]));
    for (const copy of copies) expect(flag(copy, "chown"), copy.getTextContent()).toBe("root:root");
  });

  it.each(runtimes)("%s has an exec-form HEALTHCHECK whose script is copied, and `switchyard start` as entrypoint and default command", (_, stage) => {
    const health = stage.find((i) => keyword(i) === "HEALTHCHECK");
    expect(health).toBeDefined();
    const probe = /CMD\s+(\[.*\])\s*$/.exec(health!.getArgumentsContent() ?? "");
    const command = JSON.parse(probe![1]) as string[];
    expect(command[0]).toBe("node");
    expect(command[1].startsWith("/app/")).toBe(true);
    expect(contextSources).toContain(command[1].slice("/app/".length));

    expect(execForm(stage.find((i) => keyword(i) === "ENTRYPOINT")!)).toEqual(["switchyard"]);
    expect(execForm(stage.find((i) => keyword(i) === "CMD")!)).toEqual(["start"]);
    const link = stage.filter((i) => keyword(i) === "RUN").map((i) => i.getArgumentsContent() ?? "").join("\n");
    expect(link).toMatch(/ln -s \/app\/bin\/switchyard\.mjs \/usr\/local\/bin\/switchyard/);
    expect(statSync(join(root, "bin/switchyard.mjs")).mode & 0o111).not.toBe(0);
  });

  it.each(runtimes)("%s declares the data dir and the model search path as volumes, under the variables the code reads", (_, stage) => {
    const env = new Map(stage.filter((i) => keyword(i) === "ENV").flatMap((i) => args(i).map((a) => a.split("=", 2) as [string, string])));
    const known = new Set(Object.values(CONFIG_SOURCES).map((s) => s.env));
    for (const name of env.keys()) if (name.startsWith("SWITCHYARD_")) expect(known, name).toContain(name);
    const volumes = execForm(stage.find((i) => keyword(i) === "VOLUME")!) as string[];
    expect(volumes).toContain(env.get(CONFIG_SOURCES.dataDir.env));
    for (const dir of env.get(CONFIG_SOURCES.modelPath.env)!.split(":")) expect(volumes).toContain(dir);
    expect(args(stage.find((i) => keyword(i) === "EXPOSE")!)).toEqual([env.get(CONFIG_SOURCES.port.env)]);
    expect(env.get(CONFIG_SOURCES.host.env)).toBe("0.0.0.0");
    // The values parse as the code parses them.
    const config = loadConfig(Object.fromEntries(env));
    expect(config.executionProvider).toBe(env.get(CONFIG_SOURCES.executionProvider.env) ?? "cpu");
  });

  it("copies only paths that exist and that .dockerignore lets through", () => {
    expect(allowed[0]).toBe("*");
    for (const entry of allowed.slice(1)) {
      expect(entry.startsWith("!"), entry).toBe(true);
      expect(existsSync(join(root, entry.slice(1))), entry).toBe(true);
    }
    for (const source of contextSources) {
      expect(existsSync(join(root, source)), source).toBe(true);
      expect(isAllowed(source), source).toBe(true);
    }
  });

  it("copies every folder the runtime code imports from, and that code imports only production dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules);
    const missing: string[] = [];
    for (const { file, spec } of imports) {
      if (spec.startsWith(".")) {
        const target = relative(root, resolve(root, dirname(file), spec));
        if (!contextSources.some((s) => target === s || target.startsWith(`${s}/`))) missing.push(`${file} -> ${target}`);
        continue;
      }
      if (spec.startsWith("node:") || builtins.has(spec) || spec.startsWith("cloudflare:")) continue;
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
      if (!(name in pkg.dependencies)) missing.push(`${file} -> package ${name}`);
    }
    expect(imports.length).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it("healthcheck.mjs asks each command's liveness path on its port, and leaves the trainer (no HTTP) alone", async () => {
    const probe = healthTarget as (args: string[], env: Record<string, string>) => { path: string; port: string } | undefined;
    const bin = ["node", "/usr/local/bin/switchyard"];
    expect(probe([...bin, "serve", "inference", "--port", "9101"], {})).toEqual({ path: NODE_HEALTH.live, port: "9101" });
    expect(probe([...bin, "serve", "retrieval", "--port=9102"], {})).toEqual({ path: NODE_HEALTH.live, port: "9102" });
    expect(probe([...bin, "start"], { SWITCHYARD_PORT: "8787" })).toEqual({ path: "/health", port: "8787" });
    expect(probe([...bin, "serve", "trainer"], {})).toBeUndefined();
    expect((await healthRoutes({ checkDatabase: async () => {} }).request("/health")).status).toBe(200);
  });
});
