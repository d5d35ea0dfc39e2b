import { Agent, request } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { closeServer, listen } from "../../../hosts/node/server.ts";

/** The Node listener keeps idle sockets longer than proxies do, and says so to clients (who reuse sockets up to that hint). */
let server: Awaited<ReturnType<typeof listen>>;
const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

beforeAll(async () => {
  // A POST is refused before its body is read, as auth and size limits refuse uploads.
  server = await listen((req) => (req.method === "POST" ? new Response("refused", { status: 401 }) : new Response("ok")), "127.0.0.1", 0);
});
afterAll(() => closeServer(server, 1000));

it("advertises a keep-alive timeout above the 60 s of common proxies, with headers timing out later", async () => {
  const res = await fetch(url());
  expect(await res.text()).toBe("ok");
  const seconds = Number(/timeout=(\d+)/.exec(res.headers.get("keep-alive") ?? "")?.[1]);
  expect(seconds).toBeGreaterThan(60);
  expect(server.headersTimeout).toBeGreaterThan(server.keepAliveTimeout);
});

it("keeps the connection after an early error response whose upload was not read: the next request reuses it", async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (method: string, body?: Buffer) =>
    new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
      const req = request(url(), { method, agent, headers: body ? { "content-length": body.length } : {} }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode!, reused: req.reusedSocket }));
      });
      req.on("error", reject);
      req.end(body);
    });
  try {
    expect(await send("POST", Buffer.alloc(1 << 20))).toMatchObject({ status: 401 });
    expect(await send("GET")).toEqual({ status: 200, reused: true });
  } finally {
    agent.destroy();
  }
});
