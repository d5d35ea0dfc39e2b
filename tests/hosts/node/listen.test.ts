import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { closeServer, listen } from "../../../hosts/node/server.ts";

/** The Node listener keeps idle sockets longer than proxies do, and says so to clients (who reuse sockets up to that hint). */
let server: Awaited<ReturnType<typeof listen>>;

beforeAll(async () => {
  server = await listen(() => new Response("ok"), "127.0.0.1", 0);
});
afterAll(() => closeServer(server, 1000));

it("advertises a keep-alive timeout above the 60 s of common proxies, with headers timing out later", async () => {
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  expect(await res.text()).toBe("ok");
  const seconds = Number(/timeout=(\d+)/.exec(res.headers.get("keep-alive") ?? "")?.[1]);
  expect(seconds).toBeGreaterThan(60);
  expect(server.headersTimeout).toBeGreaterThan(server.keepAliveTimeout);
});
