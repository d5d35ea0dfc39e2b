import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { repoRoot } from "./adapters.ts";

/**
 * Validators for OpenAI's published schemas (../shared/specs/openai-openapi.yaml), as JSON Schema
 * 2020-12: OpenAPI's `nullable` becomes a null type, its boolean `exclusiveMinimum`/`exclusiveMaximum`
 * the numeric bound they qualify, and its `unixtime` format is an integer.
 */
let ajv: Ajv2020 | undefined;

function load(): Ajv2020 {
  const doc = parse(readFileSync(join(repoRoot, "..", "shared", "specs", "openai-openapi.yaml"), "utf8"));
  const instance = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  instance.addFormat("uri", true);
  instance.addFormat("unixtime", { type: "number", validate: (n: number) => Number.isInteger(n) });
  instance.addSchema({ $id: "openai", components: translateNullable(doc.components) });
  return instance;
}

function translateNullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(translateNullable);
  if (!node || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) if (key !== "nullable") out[key] = translateNullable(value);
  for (const [flag, bound] of [["exclusiveMinimum", "minimum"], ["exclusiveMaximum", "maximum"]] as const) {
    if (typeof out[flag] !== "boolean") continue;
    if (out[flag] && typeof out[bound] === "number") out[flag] = out[bound];
    else delete out[flag];
    if (out[flag] !== undefined) delete out[bound];
  }
  if ((node as { nullable?: boolean }).nullable) return { anyOf: [out, { type: "null" }] };
  return out;
}

export function openAiSchema(name: string): ValidateFunction {
  ajv ??= load();
  const validate = ajv.getSchema(`openai#/components/schemas/${name}`);
  if (!validate) throw new Error(`no schema ${name} in the OpenAI spec`);
  return validate;
}

/** The schema's errors for `value`, as readable lines; [] when it validates. */
export function specErrors(name: string, value: unknown): string[] {
  const validate = openAiSchema(name);
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
}
