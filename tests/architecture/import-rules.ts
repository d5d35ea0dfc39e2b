import { builtinModules } from "node:module";
import { posix } from "node:path";

/**
 * The dependency rules between the top-level folders, checked on import specifiers alone (static
 * `import`/`export ... from`, side-effect `import "x"`, dynamic `import("x")` with a literal, and
 * `/// <reference types="x" />`):
 * - edge/ imports only edge/, ports/ and the runtime-agnostic packages below: no Node built-ins, no services/, no hosts/;
 * - services/ never imports edge/, hosts/ or trainer/, and its modules depend one way (SERVICE_LAYERS);
 * - trainer/ never imports edge/ or hosts/;
 * - ports/ imports only ports/;
 * - clients/ (the ports' HTTP clients and their wire format, shared by the hosts and the plane nodes)
 *   imports only clients/ and ports/: no package, no Node built-in (fetch and web streams alone, so
 *   the Workers entry can use them); the edge never imports them, a host hands them to it as ports.
 */

/** The services/ modules each services/ module may import: model math at the bottom, the adapter plane over inference. */
export const SERVICE_LAYERS: Readonly<Record<string, readonly string[]>> = {
  store: [],
  model: [],
  evaluation: [],
  inference: ["model"],
  retrieval: ["model", "store"],
  adapters: ["inference", "model", "store"],
  files: ["store"],
};

/** The packages edge/ may import: web-standard, running unchanged on Node and Workers. */
export const EDGE_PACKAGES: readonly string[] = ["hono", "zod"];

export interface SourceFile {
  /** Repository-relative, with `/` separators (`edge/app.ts`). */
  path: string;
  source: string;
}

export interface Violation {
  file: string;
  specifier: string;
  rule: string;
}

const STATIC = /\b(?:import|export)\s+(?:type\s+)?[\w*{}\s,$]*?\bfrom\s*["']([^"']+)["']/g;
const SIDE_EFFECT = /\bimport\s*["']([^"']+)["']/g;
const DYNAMIC = /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g;
const REFERENCE = /^\s*\/\/\/\s*<reference\s+types\s*=\s*["']([^"']+)["']/gm;
const BUILTINS = new Set(builtinModules);

/** Every module specifier a source file names (comments aside). */
export function importSpecifiers(source: string): string[] {
  const references = [...source.matchAll(REFERENCE)].map((m) => m[1]!);
  const code = stripComments(source);
  return [...references, ...[STATIC, SIDE_EFFECT, DYNAMIC].flatMap((re) => [...code.matchAll(re)].map((m) => m[1]!))];
}

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:\\"'`])\/\/.*$/gm, "$1");
}

export const isBuiltin = (specifier: string) => specifier.startsWith("node:") || BUILTINS.has(specifier) || BUILTINS.has(specifier.split("/")[0]!);

/** `@scope/name/sub` -> `@scope/name`, `hono/utils/x` -> `hono`. */
export const packageName = (specifier: string) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/");

/** The top-level folder a relative specifier lands in (`edge`, `services`, ...), or `..` when it leaves the repository. */
function targetFolder(file: string, specifier: string): string {
  return posix.normalize(posix.join(posix.dirname(file), specifier)).split("/")[0]!;
}

/** Why `specifier`, imported by `file`, breaks the rules; undefined when it does not. */
function ruleBroken(file: string, specifier: string): string | undefined {
  const from = file.split("/")[0];
  const relative = specifier.startsWith(".");
  const to = relative ? targetFolder(file, specifier) : undefined;
  if (from === "edge") {
    if (relative) return to === "edge" || to === "ports" ? undefined : `edge/ imports only edge/ and ports/, not ${to}/`;
    if (isBuiltin(specifier)) return "edge/ imports no Node built-in";
    return EDGE_PACKAGES.includes(packageName(specifier)) ? undefined : `edge/ imports only the packages ${EDGE_PACKAGES.join(", ")}`;
  }
  if (from === "services") return to === "edge" || to === "hosts" || to === "trainer" ? `services/ never imports ${to}/` : relative ? serviceLayerBroken(file, specifier) : undefined;
  if (from === "trainer") return to === "edge" || to === "hosts" ? `trainer/ never imports ${to}/` : undefined;
  if (from === "ports") return to === "ports" ? undefined : "ports/ imports only ports/";
  if (from === "clients") return to === "clients" || to === "ports" ? undefined : "clients/ imports only clients/ and ports/ (fetch alone)";
  return undefined;
}

/** Every import in `files` that breaks the rules. */
export function checkImports(files: SourceFile[]): Violation[] {
  return files.flatMap((f) =>
    importSpecifiers(f.source).flatMap((specifier) => {
      const rule = ruleBroken(f.path, specifier);
      return rule ? [{ file: f.path, specifier, rule }] : [];
    }),
  );
}

function serviceLayerBroken(file: string, specifier: string): string | undefined {
  const from = file.split("/")[1]!;
  const target = posix.normalize(posix.join(posix.dirname(file), specifier)).split("/");
  if (target[0] !== "services" || target[1] === from || target.length < 3) return undefined;
  return SERVICE_LAYERS[from]?.includes(target[1]!) ? undefined : `services/${from} imports services/${(SERVICE_LAYERS[from] ?? []).join(", services/") || "nothing else"}, not services/${target[1]}`;
}
