import { expect, it } from "vitest";
import { createTenantWithKey, startTestPlatform } from "../helpers/platform.ts";

it("a shutdown lets in-flight requests finish, refuses new connections, and closes the database", async () => {
  const p = await startTestPlatform();
  const { key } = await createTenantWithKey(p, "shutdown");
  const url = p.url;
  const res = await p.call("POST", "/v1/chat/completions", {
    key,
    json: { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 300, temperature: 1, seed: 4, stream: true },
  });
  const reader = res.body!.getReader();
  let text = new TextDecoder().decode((await reader.read()).value); // the stream has started: the request is in flight
  const closing = p.platform.close();

  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
  expect(text).toMatch(/"finish_reason":"(stop|length)"/);
  expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
  await closing;
  await expect(fetch(`${url}/health`)).rejects.toThrow();
  await p.stop();
});
