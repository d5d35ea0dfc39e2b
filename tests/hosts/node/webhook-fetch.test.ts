/**
 * Monitors' webhooks from the Node host: only public addresses unless the operator allows private
 * ones (checked on the resolved addresses, so a name for loopback is refused like the literal), and a
 * delivery retried after a 5xx but not after a 4xx or a refused address. A real HTTP receiver on loopback.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { deliverWebhook, REFUSED_ADDRESS, SIGNATURE_HEADER } from "../../../edge/monitoring/webhook.ts";
import { isPublicAddress, webhookFetch } from "../../../hosts/node/webhook-fetch.ts";

let server: Server;
let port: number;
let answers: number[] = [];
const received: Array<{ signature: string | undefined; body: string }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ signature: req.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined, body });
      res.writeHead(answers.shift() ?? 200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  received.length = 0;
  answers = [];
});

const deliver = (url: string, allowPrivate: boolean) =>
  deliverWebhook(url, "whsec_test", "monitor.alert", { hello: "world" }, { fetch: webhookFetch({ allowPrivate }), nowMs: Date.now(), retryDelaysMs: [0, 0] });

it("tells public addresses from loopback, private, link-local, reserved and mapped ones", () => {
  for (const a of ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]) expect(isPublicAddress(a), a).toBe(true);
  const notPublic = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "172.16.5.4", "192.168.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "localhost"];
  for (const a of notPublic) expect(isPublicAddress(a), a).toBe(false);
});

it("refuses loopback by address and by name, sending nothing, and does not retry a refusal", async () => {
  for (const host of ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"]) {
    const delivery = await deliver(`http://${host}:${port}/hook`, false);
    expect(delivery.status, host).toBe("failed");
    expect(delivery.error, host).toContain(REFUSED_ADDRESS);
  }
  expect(received).toHaveLength(0);
});

it("delivers to a private address when the operator allows it, retrying a 5xx with the same signed body", async () => {
  answers = [503, 502];
  const delivery = await deliver(`http://127.0.0.1:${port}/hook`, true);
  expect(delivery).toMatchObject({ status: "delivered", httpStatus: 200 });
  expect(received).toHaveLength(3);
  expect(new Set(received.map((r) => `${r.signature} ${r.body}`)).size).toBe(1);
});

it("gives up after three attempts, and never retries a 4xx", async () => {
  answers = [500, 500, 500, 200];
  expect(await deliver(`http://127.0.0.1:${port}/hook`, true)).toMatchObject({ status: "failed", httpStatus: 500 });
  expect(received).toHaveLength(3);
  received.length = 0;
  answers = [410];
  expect(await deliver(`http://127.0.0.1:${port}/hook`, true)).toMatchObject({ status: "failed", httpStatus: 410 });
  expect(received).toHaveLength(1);
});
