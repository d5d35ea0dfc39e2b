/**
 * One HTTP request on its own connection (no keep-alive reuse), so a fuzz case can never be answered
 * by, or lost to, the state a previous case left on a shared socket.
 */
import { request as httpRequest } from "node:http";

export interface OneShotAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Serializes `init` as fetch would (FormData gets its multipart body and boundary) and sends it. */
export async function oneShot(url: string, init: { method: string; headers?: Record<string, string>; body?: string | Uint8Array | FormData }, timeoutMs: number): Promise<OneShotAnswer> {
  const method = init.method;
  const hasBody = init.body !== undefined && method !== "GET" && method !== "HEAD";
  const prepared = new Request(url, { method: hasBody ? "POST" : "GET", headers: init.headers, body: hasBody ? init.body : undefined });
  const body = hasBody ? Buffer.from(await prepared.arrayBuffer()) : undefined;
  const headers: Record<string, string> = { ...Object.fromEntries(prepared.headers), connection: "close" };
  if (body) headers["content-length"] = String(body.byteLength);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
