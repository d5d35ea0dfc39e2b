import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform } from "../../helpers/platform.ts";

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

/**
 * Opens a chat request the server has provably received but cannot finish yet: `Expect: 100-continue`
 * makes the server confirm the request before the body is sent. `send()` sends the body and resolves
 * with the whole raw response once the server closes the connection.
 */
async function requestInFlight(port: number, key: string, json: unknown) {
  const body = JSON.stringify(json);
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
  );
  expect(await receiveUntil(socket, "\r\n\r\n")).toMatch(/^HTTP\/1\.1 100 Continue/);
  return {
    send(): Promise<string> {
      const response = new Promise<string>((resolve) => {
        let received = "";
        socket.on("data", (data: Buffer) => (received += data.toString()));
        socket.once("close", () => resolve(received));
      });
      socket.write(body);
      return response;
    },
  };
}

const story = { messages: [{ role: "user", content: "Once upon a time" }], temperature: 0 };

it("a shutdown lets an in-flight stream finish, then closes the database", async () => {
  const p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "shutdown");
  const wal = join(p.dataDir, "switchyard.db-wal");
  expect(existsSync(wal)).toBe(true); // the open connection holds its write-ahead log
  const request = await requestInFlight(Number(new URL(p.url).port), key, { ...story, max_tokens: 40, stream: true });
  const closing = p.platform.close();

  const raw = await request.send();
  expect(raw).toMatch(/^HTTP\/1\.1 200 OK/);
  expect(raw).toContain('"finish_reason":"length"');
  expect(raw).toContain("data: [DONE]");
  await closing;
  // SQLite checkpoints and deletes the log when the last connection closes; a leaked handle keeps it.
  expect(existsSync(wal)).toBe(false);
  await p.stop();
});

it("a shutdown refuses new connections while a request is still in flight, then answers that request", async () => {
  const p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "shutdown-refuse");
  const port = Number(new URL(p.url).port);
  const request = await requestInFlight(port, key, { ...story, max_tokens: 8 });

  let closed = false;
  const closing = p.platform.close().then(() => (closed = true));
  expect(await probe(port)).toBe("ECONNREFUSED");
  expect(closed).toBe(false);

  const raw = await request.send();
  expect(raw).toMatch(/^HTTP\/1\.1 200 OK/);
  const completion = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
  expect(completion).toMatchObject({ object: "chat.completion", usage: { completion_tokens: 8 } });
  await closing;
  expect(closed).toBe(true);
  await p.stop();
});
