/**
 * Malformed-input cases for every operation of the OpenAPI document: schema-valid and schema-broken
 * JSON bodies, hostile encodings (depth, size, unicode, content types), multipart shapes, hostile path
 * and query values, and wrong credentials. Deterministic: the same seed gives the same cases.
 */
import { seededRandom, type Random } from "../helpers/prng.ts";
import { hostileValue, invalidValue, nested, NASTY_STRINGS, validValue, type FieldHints, type JsonSchema } from "./schema-values.ts";

export interface Operation {
  method: string;
  /** OpenAPI path template, e.g. /v1/adapters/{id}. */
  path: string;
  body?: JsonSchema;
  query: Array<{ name: string; schema: JsonSchema }>;
  params: string[];
}

/** Destructive operations last, so the fixtures the others use are still there for them. */
export function destructiveLast(ops: Operation[]): Operation[] {
  const destructive = (o: Operation) => o.method === "DELETE" || o.path.endsWith("/disable");
  return [...ops.filter((o) => !destructive(o)), ...ops.filter(destructive)];
}

export interface FuzzCase {
  /** What was generated, for the failure report. */
  label: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array | FormData;
}

export interface Credentials {
  /** The key the operation is meant for (admin for /v1/admin, the tenant's otherwise). */
  right: string;
  /** A valid key of the other role. */
  wrong: string;
}

type OpenApiDoc = { paths: Record<string, Record<string, OpenApiOperation>> };
type OpenApiOperation = {
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  parameters?: Array<{ name: string; in: string; schema: JsonSchema }>;
};

/** Every operation the document describes. */
export function operationsOf(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const parameters = op.parameters ?? [];
      ops.push({
        method: method.toUpperCase(),
        path,
        body: op.requestBody?.content["application/json"]?.schema,
        query: parameters.filter((p) => p.in === "query").map((p) => ({ name: p.name, schema: p.schema })),
        params: parameters.filter((p) => p.in === "path").map((p) => p.name),
      });
    }
  }
  return ops;
}

/** Path segments that are not ids: encodings, traversal, sizes, unicode. Inserted into the URL as they are. */
const HOSTILE_SEGMENTS = [
  "nope",
  "%ZZ",
  "%",
  "%00",
  "%2e%2e%2f%2e%2e%2fadmin",
  "..%2F..%2Fetc%2Fpasswd",
  "%F0%9F%92%A9",
  "%C0%AF",
  "%ED%A0%80",
  "x".repeat(5000),
  "ad_" + "f".repeat(24),
  "doc_0",
  "'%20OR%201=1--",
  "%7Bid%7D",
  "null",
  "-1",
];

const UPLOAD_PATHS = new Set(["/v1/adapters", "/v1/admin/adapters", "/v1/knowledge/documents"]);

export interface CaseOptions {
  seed: number;
  count: number;
  credentials: Credentials;
  /** Real ids to put in this operation's path parameters (the fixtures), besides the hostile segments. */
  ids: string[];
  /** Values for body fields by name (e.g. `model`). */
  hints?: FieldHints;
}

export function casesFor(op: Operation, o: CaseOptions): FuzzCase[] {
  const r = seededRandom(o.seed);
  const upload = UPLOAD_PATHS.has(op.path) && op.method === "POST";
  const hasBody = op.method !== "GET" && op.method !== "HEAD";
  return Array.from({ length: o.count }, (_, i) => {
    const path = fillPath(op, r, o.ids) + queryString(op, r);
    const base: FuzzCase = { label: `#${i}`, method: op.method, path, headers: { authorization: `Bearer ${o.credentials.right}` } };
    const kind = r.next();
    if (kind < 0.08) return withAuth(base, r, o.credentials);
    if (kind < 0.12) return { ...base, label: `${base.label} method`, method: r.pick(["PUT", "PATCH", "OPTIONS", "HEAD", "POST", "PROPFIND"]) };
    if (!hasBody) return { ...base, label: `${base.label} headers`, headers: { ...base.headers, ...hostileHeaders(r) } };
    if (upload && kind < 0.6) return multipartCase(base, r);
    if (op.body && kind < 0.45) return jsonCase(base, validValue(op.body, r, 0, "", o.hints), "valid");
    if (op.body && kind < 0.75) return jsonCase(base, invalidValue(op.body, r, o.hints), "invalid");
    if (kind < 0.82) return multipartCase(base, r);
    return rawCase(base, r);
  });
}

function fillPath(op: Operation, r: Random, ids: string[]): string {
  return op.path.replace(/\{(\w+)\}/g, () => (r.chance(0.6) && ids.length > 0 ? r.pick(ids) : r.pick(HOSTILE_SEGMENTS)));
}

function queryString(op: Operation, r: Random): string {
  if (op.query.length === 0 && !r.chance(0.05)) return "";
  const parts: string[] = [];
  for (const q of op.query) {
    if (r.chance(0.4)) continue;
    const value = r.chance(0.5) ? validValue(q.schema, r) : hostileValue(r);
    // Cut so the request line stays under Node's 16 KB header limit (past it, Node's parser answers, not the app).
    parts.push(`${q.name}=${encodeQueryValue((typeof value === "string" ? value : JSON.stringify(value)).slice(0, 1500))}`);
  }
  if (r.chance(0.3)) parts.push(r.pick(["limit=1&limit=2", "%ZZ=1", "from[]=1", "to=%ZZ", "a=" + "b".repeat(4000), "=", "&&&", "offset=1e999"]));
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}

/** Lone surrogates cannot be percent-encoded: they go out as the (invalid) UTF-8 of a surrogate instead. */
function encodeQueryValue(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return "%ED%A0%80";
  }
}

function withAuth(c: FuzzCase, r: Random, creds: Credentials): FuzzCase {
  const variants: Array<[string, Record<string, string>]> = [
    ["no key", {}],
    ["wrong role", { authorization: `Bearer ${creds.wrong}` }],
    ["unknown key", { authorization: "Bearer sy_key_aaaaaaaaaaaa_" + "A".repeat(43) }],
    ["basic auth", { authorization: "Basic dXNlcjpwYXNz" }],
    ["empty bearer", { authorization: "Bearer " }],
    ["huge key", { authorization: `Bearer ${"k".repeat(8000)}` }],
    ["tampered key", { authorization: `Bearer ${creds.right.slice(0, -2)}xx` }],
  ];
  const [name, headers] = r.pick(variants);
  return { ...c, label: `${c.label} auth:${name}`, headers: { ...headers, "content-type": "application/json" }, body: c.method === "GET" ? undefined : "{}" };
}

function hostileHeaders(r: Random): Record<string, string> {
  return r.pick<Record<string, string>>([
    { accept: "text/event-stream" },
    { accept: "*/*;q=0.1, application/xml" },
    { "x-request-id": "x".repeat(2000) },
    { "x-request-id": "../../etc" },
    { "accept-encoding": "gzip, br, zstd" },
    { range: "bytes=0-1" },
    { "if-none-match": "*" },
    { "content-type": "application/json" },
  ]);
}

function jsonCase(c: FuzzCase, value: unknown, what: string): FuzzCase {
  const body = JSON.stringify(value) ?? "null";
  return { ...c, label: `${c.label} json:${what} ${body.slice(0, 160)}`, headers: { ...c.headers, "content-type": "application/json" }, body };
}

const JSON_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/merge-patch+json",
  "application/json; charset=utf-16",
  "application/jsonx",
  "text/plain",
  "text/json",
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "multipart/form-data; boundary=",
  "application/zip",
  "application/gzip",
  "application/pdf",
  "application/octet-stream",
  "",
  "; ; ;",
  "application/json; boundary=x; charset=\"\u00ff\"",
];

/** Bodies that are not what their content type says, or are too deep, too big or badly encoded. */
function rawCase(c: FuzzCase, r: Random): FuzzCase {
  const deep = r.int(1000, 100_000);
  const bodies: Array<[string, () => string | Uint8Array]> = [
    ["truncated json", () => '{"messages": [{"role": "user", "content": "hi'],
    ["not json", () => "hello world"],
    ["empty", () => ""],
    ["json null", () => "null"],
    ["json scalar", () => r.pick(["0", '"x"', "true", "[]", "1e999", "-0"])],
    ["bom json", () => '\ufeff{"query":"x"}'],
    ["utf-16 json", () => new Uint8Array(Buffer.from('{"query":"x","text":"y"}', "utf16le"))],
    ["invalid utf-8", () => new Uint8Array([0x7b, 0x22, 0x71, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc0, 0xaf, 0x22, 0x7d])],
    ["lone surrogate escapes", () => '{"query":"\\ud800","text":"\\udfff","name":"\\ud83d","messages":[{"role":"user","content":"\\ud800"}]}'],
    [`array depth ${deep}`, () => "[".repeat(deep) + "]".repeat(deep)],
    [`object depth ${deep}`, () => '{"a":'.repeat(deep) + "1" + "}".repeat(deep)],
    ["depth in a field", () => JSON.stringify({ query: "x", text: "y", name: "n", messages: nested(2000, true), metadata: nested(2000, false) })],
    ["over the body limit", () => JSON.stringify({ text: "x".repeat(1_100_000) })],
    ["50k keys", () => JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i])))],
    ["huge number", () => '{"k": 1' + "0".repeat(5000) + ', "max_tokens": 1e400}'],
    ["duplicate keys", () => '{"query":"a","query":{"x":1},"text":"t","text":null}'],
    ["proto pollution", () => '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}},"query":"q"}'],
    ["nul bytes", () => '{"query":"a\\u0000b","text":"\\u0000","name":"\\u0000"}'],
    ["hostile value", () => JSON.stringify(hostileValue(r))],
    ["nasty strings", () => JSON.stringify({ query: r.pick(NASTY_STRINGS), text: r.pick(NASTY_STRINGS), name: r.pick(NASTY_STRINGS), title: r.pick(NASTY_STRINGS) })],
  ];
  const [name, make] = r.pick(bodies);
  const type = r.chance(0.6) ? "application/json" : r.pick(JSON_TYPES);
  const headers: Record<string, string> = { ...c.headers };
  if (type) headers["content-type"] = type;
  return { ...c, label: `${c.label} raw:${name} as ${JSON.stringify(type)}`, headers, body: make() };
}

const FIELD_NAMES = ["file", "name", "title", "metadata", "public", "adapter_config", "adapter_model", "text", "", "file[]", "💩", "__proto__"];
const FILE_NAMES = ["doc.txt", "a.md", "page.html", "x.pdf", "a.jsonl", "bot.zip", "bot.tar.gz", "adapter_model.bin", "../../etc/passwd", "", "C:\\evil.txt", "\u0000.txt", "x".repeat(300)];

/** A FormData of random fields and files, or a hand-written multipart body that is broken somewhere. */
function multipartCase(c: FuzzCase, r: Random): FuzzCase {
  if (r.chance(0.5)) {
    const form = new FormData();
    const fields: string[] = [];
    for (let n = r.int(0, 4); n > 0; n--) {
      const name = r.pick(FIELD_NAMES);
      if (r.chance(0.5)) {
        const fileName = r.pick(FILE_NAMES);
        form.append(name, new Blob([fileBytes(r)], { type: r.pick(["", "text/plain", "application/pdf", "application/zip", "image/png", "x/y"]) }), fileName);
        fields.push(`${name}=file(${fileName.slice(0, 20)})`);
      } else {
        const value = r.chance(0.3) ? JSON.stringify(hostileValue(r)) : r.pick(["bot", "true", "{}", "[]", "{\"a\":1}", "not json", ...NASTY_STRINGS]);
        form.append(name, value);
        fields.push(`${name}=${value.slice(0, 20)}`);
      }
    }
    return { ...c, label: `${c.label} form:[${fields.join(", ")}]`, headers: { authorization: c.headers.authorization! }, body: form };
  }
  const [name, type, body] = r.pick(brokenMultiparts(r));
  return { ...c, label: `${c.label} multipart:${name}`, headers: { ...c.headers, "content-type": type }, body };
}

function fileBytes(r: Random): Uint8Array {
  switch (r.int(0, 4)) {
    case 0:
      return new Uint8Array(0);
    case 1:
      return new TextEncoder().encode("Refunds are paid within 14 days. ".repeat(r.int(1, 20)));
    case 2:
      return Uint8Array.from({ length: r.int(1, 4096) }, () => r.int(0, 255));
    case 3:
      return new TextEncoder().encode(r.pick(["%PDF-1.4\n%%EOF", "PK\u0003\u0004garbage", "\u001f\u008bnot gzip", "<html><script>x</script></html>", "{\"a\":1}\n{bad"]));
    default:
      return new TextEncoder().encode(JSON.stringify(hostileValue(r)));
  }
}

function brokenMultiparts(r: Random): Array<[string, string, string]> {
  const b = `----fuzz${r.int(0, 1e6)}`;
  const part = (headers: string, content: string) => `--${b}\r\n${headers}\r\n\r\n${content}\r\n`;
  const file = part('Content-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain', "Hello there.");
  return [
    ["no boundary", "multipart/form-data", file + `--${b}--\r\n`],
    ["wrong boundary", "multipart/form-data; boundary=other", file + `--${b}--\r\n`],
    ["no closing delimiter", `multipart/form-data; boundary=${b}`, file],
    ["truncated part", `multipart/form-data; boundary=${b}`, file.slice(0, 40)],
    ["empty body", `multipart/form-data; boundary=${b}`, ""],
    ["only the end", `multipart/form-data; boundary=${b}`, `--${b}--\r\n`],
    ["no content-disposition", `multipart/form-data; boundary=${b}`, part("Content-Type: text/plain", "x") + `--${b}--\r\n`],
    ["disposition without name", `multipart/form-data; boundary=${b}`, part('Content-Disposition: form-data; filename="a.txt"', "x") + `--${b}--\r\n`],
    ["encoded filename", `multipart/form-data; boundary=${b}`, part("Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%ZZ%ff", "x") + `--${b}--\r\n`],
    ["quoted boundary", `multipart/form-data; boundary="${b}"`, file + `--${b}--\r\n`],
    ["long boundary", `multipart/form-data; boundary=${"b".repeat(500)}`, `--${"b".repeat(500)}\r\n\r\n\r\n--${"b".repeat(500)}--`],
    ["lf only", `multipart/form-data; boundary=${b}`, file.replaceAll("\r\n", "\n") + `--${b}--\n`],
    ["1000 parts", `multipart/form-data; boundary=${b}`, part('Content-Disposition: form-data; name="x"', "y").repeat(1000) + `--${b}--\r\n`],
    ["file field as text", `multipart/form-data; boundary=${b}`, part('Content-Disposition: form-data; name="file"', "just text") + `--${b}--\r\n`],
    ["metadata not json", `multipart/form-data; boundary=${b}`, file + part('Content-Disposition: form-data; name="metadata"', "{nope") + `--${b}--\r\n`],
    ["metadata array", `multipart/form-data; boundary=${b}`, file + part('Content-Disposition: form-data; name="metadata"', "[1,2]") + `--${b}--\r\n`],
    ["two files", `multipart/form-data; boundary=${b}`, file + file + `--${b}--\r\n`],
    ["binary garbage", `multipart/form-data; boundary=${b}`, `--${b}\r\n\u0000\u00ff\u00fe\r\n\r\n\r\n`],
  ];
}
