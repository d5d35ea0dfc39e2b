/**
 * Values generated from a JSON Schema (the subset `z.toJSONSchema` emits): `validValue` follows the
 * schema, `invalidValue` breaks it at one random place (wrong type, out of range, missing field, ...).
 */
import type { Random } from "../helpers/prng.ts";

export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
}

/** Strings that have broken parsers before: control characters, lone surrogates, RTL marks, NUL, huge code points. */
export const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "\ud800",
  "\udfff\ud800",
  "\u202e\u0645\u0631\u062d\u0628\u0627",
  "💩".repeat(50),
  "e\u0301".repeat(30),
  "\r\n\r\n",
  "%00%ff%zz",
  "../../../../etc/passwd",
  "<script>alert(1)</script>",
  "' OR 1=1; DROP TABLE tenants; --",
  "__proto__",
  "constructor",
  "NaN",
  "-0",
  "1e309",
  "ad_000000000000000000000000",
  "stories260k:",
  "stories260k:nope@0",
  "@@@",
  "x".repeat(70_000),
];

const NASTY_NUMBERS = [0, -0, -1, 1, 0.5, -1e-300, 1e-300, 2 ** 31, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e308, -1e308, Number.MAX_VALUE];

/** Clamps for fields that would make a valid case slow: generation length above all. */
const FIELD_CAPS: Record<string, number> = { max_tokens: 3, max_completion_tokens: 3, top_logprobs: 3, k: 8 };

/** Values to use for a field by name (e.g. `model`: the ids that exist), so more valid cases get past lookups. */
export type FieldHints = Record<string, readonly unknown[]>;

export function validValue(schema: JsonSchema, r: Random, depth = 0, field = "", hints: FieldHints = {}): unknown {
  if (schema.const !== undefined) return schema.const;
  if (hints[field] && r.chance(0.8)) return r.pick(hints[field]);
  if (schema.enum) return r.pick(schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return validValue(r.pick(alternatives), r, depth, field, hints);
  if (schema.allOf) return validValue(Object.assign({}, ...schema.allOf) as JsonSchema, r, depth, field, hints);
  if (schema.default !== undefined && r.chance(0.2)) return schema.default;
  const type = Array.isArray(schema.type) ? r.pick(schema.type) : schema.type;
  switch (type) {
    case "string":
      return validString(schema, r);
    case "integer":
    case "number":
      return validNumber(schema, r, type === "integer", FIELD_CAPS[field]);
    case "boolean":
      return r.chance(0.5);
    case "null":
      return null;
    case "array":
      return validArray(schema, r, depth, hints);
    case "object":
      return validObject(schema, r, depth, hints);
    default:
      return r.pick(["text", 1, true, null]);
  }
}

function validString(schema: JsonSchema, r: Random): string {
  const min = schema.minLength ?? 0;
  const max = Math.min(schema.maxLength ?? 40, min + 40);
  const words = ["Once", "upon", "a", "time", "refund", "pumps", "valves", "ünïcödé", "日本語", "🙂"];
  let s = "";
  const target = r.int(min, max);
  while (s.length < target) s += `${r.pick(words)} `;
  s = s.slice(0, Math.max(min, Math.min(target, max)));
  return s.length < min ? s.padEnd(min, "x") : s;
}

function validNumber(schema: JsonSchema, r: Random, integer: boolean, cap?: number): number {
  const lo = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + (integer ? 1 : 1e-6) : -1000);
  let hi = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - (integer ? 1 : 1e-6) : 1000);
  if (cap !== undefined) hi = Math.min(hi, Math.max(lo, cap));
  hi = Math.min(hi, lo + 10_000);
  const x = lo + r.next() * (hi - lo);
  return integer ? Math.min(hi, Math.max(lo, Math.round(x))) : x;
}

function validArray(schema: JsonSchema, r: Random, depth: number, hints: FieldHints): unknown[] {
  const min = schema.minItems ?? 0;
  const max = Math.min(schema.maxItems ?? 3, min + 3);
  const n = depth > 4 ? min : r.int(min, max);
  return Array.from({ length: n }, () => validValue(schema.items ?? {}, r, depth + 1, "", hints));
}

function validObject(schema: JsonSchema, r: Random, depth: number, hints: FieldHints): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const required = new Set(schema.required ?? []);
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    if (required.has(name) || (depth < 4 && r.chance(0.5))) out[name] = validValue(prop, r, depth + 1, name, hints);
  }
  if (!schema.properties && typeof schema.additionalProperties === "object" && r.chance(0.7)) {
    for (let i = r.int(0, 3); i > 0; i--) out[`key${i}`] = validValue(schema.additionalProperties, r, depth + 1, "", hints);
  }
  return out;
}

/** A value of some other JSON type, or a boundary, or a hostile string. */
export function hostileValue(r: Random, depth = 0): unknown {
  switch (r.int(0, 7)) {
    case 0:
      return r.pick(NASTY_STRINGS);
    case 1:
      return r.pick(NASTY_NUMBERS);
    case 2:
      return r.pick([true, false, null]);
    case 3:
      return depth > 2 ? [] : [hostileValue(r, depth + 1), hostileValue(r, depth + 1)];
    case 4:
      return depth > 2 ? {} : { [r.pick(NASTY_STRINGS.slice(0, 16))]: hostileValue(r, depth + 1) };
    case 5:
      return nested(r.int(50, 400), r.chance(0.5));
    case 6:
      return JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}');
    default:
      return r.pick([{}, [], "", 0]);
  }
}

/** `[[[...]]]` or `{"a":{"a":...}}` nested `depth` levels. */
export function nested(depth: number, arrays: boolean): unknown {
  let v: unknown = arrays ? [] : {};
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { a: v };
  return v;
}

/** A valid value with one place broken: replaced, removed, or given an extra field. */
export function invalidValue(schema: JsonSchema, r: Random, hints: FieldHints = {}): unknown {
  const value = validValue(schema, r, 0, "", hints);
  const slots = collectSlots(value);
  if (slots.length === 0 || r.chance(0.1)) return hostileValue(r);
  const { parent, key } = r.pick(slots);
  const action = r.int(0, 3);
  if (action === 0 && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key];
  else if (action === 1 && typeof parent[key as never] === "object" && parent[key as never] !== null && !Array.isArray(parent[key as never])) {
    (parent[key as never] as Record<string, unknown>)[r.pick(["unknown_field", "__proto__", "💩", ""])] = hostileValue(r);
  } else (parent as Record<string, unknown>)[key] = hostileValue(r);
  return value;
}

type Slot = { parent: Record<string, unknown> | unknown[]; key: string };

function collectSlots(value: unknown, out: Slot[] = []): Slot[] {
  if (typeof value !== "object" || value === null) return out;
  for (const key of Object.keys(value)) {
    out.push({ parent: value as Record<string, unknown>, key });
    collectSlots((value as Record<string, unknown>)[key], out);
  }
  return out;
}
