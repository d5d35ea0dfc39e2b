import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform } from "../helpers/platform.ts";

const decoder = new TextDecoder();

/** Resolves with the connect error code, or "connected" if something still accepts on the port. */
function probe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Resolves with everything received once `text` has arrived on the socket. */
function receiveUntil(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = "";
    const onData = (data: Buffer) => {
      received += data.toString();
      if (!received.includes(text)) return;
      socket.off("data", onData);
      resolve(received);
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

it("a shutdown lets an in-flight stream finish, then closes the database", async () => {
  const p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "shutdown");
  const wal = join(p.dataDir, "switchyard.db-wal");
  expect(existsSync(wal)).toBe(true); // the open connection holds its write-ahead log
  const res = await p.call("POST", "/v1/chat/completions", {
    key,
    json: { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 300, temperature: 1, seed: 4, stream: true },
  });
  const reader = res.body!.getReader();
  let text = decoder.decode((await reader.read()).value); // the stream has started: the request is in flight
  const closing = p.platform.close();

  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value);
  expect(text).toMatch(/"finish_reason":"(stop|length)"/);
  expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
  await closing;
  // SQLite checkpoints and deletes the log when the last connection closes; a leaked handle keeps it.
  expect(existsSync(wal)).toBe(false);
  await p.stop();
});

it("a shutdown refuses new connections while a request is still in flight, then answers that request", async () => {
  const p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "shutdown-refuse");
  const port = Number(new URL(p.url).port);
  const body = JSON.stringify({ messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 8, temperature: 0 });
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  // `Expect: 100-continue` makes the server confirm it has the request before the body is sent, so the
  // request is provably in flight (and cannot finish) while the shutdown starts.
  socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
  );
  expect(await receiveUntil(socket, "\r\n\r\n")).toMatch(/^HTTP\/1\.1 100 Continue/);

  let closed = false;
  const closing = p.platform.close().then(() => (closed = true));
  expect(await probe(port)).toBe("ECONNREFUSED");
  expect(closed).toBe(false);

  const response = new Promise<string>((resolve) => {
    let received = "";
    socket.on("data", (data: Buffer) => (received += data.toString()));
    socket.once("close", () => resolve(received));
  });
  socket.write(body);
  const raw = await response;
  expect(raw).toMatch(/^HTTP\/1\.1 200 OK/);
  const completion = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
  expect(completion).toMatchObject({ object: "chat.completion", usage: { completion_tokens: 8 } });
  await closing;
  expect(closed).toBe(true);
  await p.stop();
});
