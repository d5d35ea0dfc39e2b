/**
 * A response sent before the request body was read must not promise keep-alive: the node adapter
 * drops such a socket once its drain time is up, which lost the next request of fuzz cases sent
 * on the same connection.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform, type TestPlatform } from "../helpers/platform.ts";

let p: TestPlatform;
let key: string;

beforeAll(async () => {
  p = await startTestPlatform();
  key = (await createTenantWithKey(p, "keep-alive")).key;
});
afterAll(async () => {
  await p.stop();
});

/** Writes `raw` on a fresh socket and resolves with the response head (status line and headers, lower-cased). */
function responseHead(raw: string): Promise<{ status: number; headers: Map<string, string> }> {
  const { hostname, port } = new URL(p.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = "";
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim().toLowerCase()]));
      socket.destroy();
      resolve({ status: Number(statusLine!.split(" ")[1]), headers });
    });
    socket.on("error", reject);
    socket.write(raw);
  });
}

it("an early refusal of a request whose body is still arriving says Connection: close", async () => {
  // 100 bytes announced, 5 sent: the 401 goes out while the rest of the body is still expected.
  const head = await responseHead('POST /v1/adapters HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
  expect(head.status).toBe(401);
  expect(head.headers.get("connection")).toBe("close");
  const unsupported = await responseHead(`POST /v1/adapters HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc`);
  expect(unsupported.status).toBe(415);
  expect(unsupported.headers.get("connection")).toBe("close");
});

it("a request whose body was read keeps its connection", async () => {
  const body = JSON.stringify({ query: "refunds", k: 1 });
  const head = await responseHead(`POST /v1/knowledge/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  expect(head.status).toBe(200);
  expect(head.headers.get("connection")).toBe("keep-alive");
  const get = await responseHead("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  expect(get.headers.get("connection")).toBe("keep-alive");
});
