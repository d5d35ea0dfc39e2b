/**
 * The playground's static routes over the Node host's asset reader (the real playground/ folder): the
 * page and its modules with a strict CSP, compressed; vendored uPlot from node_modules; nothing outside
 * playground/ui reachable; and the compression stays on these routes (an SSE stream must not be buffered).
 */
import { Hono } from "hono";
import { expect, it } from "vitest";
import type { AppEnv } from "../../../edge/env.ts";
import { onError } from "../../../edge/middleware/errors.ts";
import { playgroundRoutes } from "../../../edge/routes/playground.ts";
import { playgroundAssets } from "../../../hosts/node/assets.ts";

const app = new Hono<AppEnv>();
app.route("/", playgroundRoutes(playgroundAssets()));
app.get("/v1/stream", (c) => c.body("data: 1\n\n", 200, { "content-type": "text/event-stream" }));
app.onError(onError);

const get = (path: string, headers: Record<string, string> = {}) => app.request(path, { headers });

it("serves index.html at / and the modules under /ui with a strict content security policy", async () => {
  const page = await get("/");
  expect(page.status).toBe(200);
  expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
  expect(page.headers.get("referrer-policy")).toBe("no-referrer");
  expect(await page.text()).toContain('<script type="module" src="/ui/app.js"></script>');
  const script = await get("/ui/chat.js");
  expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  expect(await script.text()).toContain("export async function start");
});

it("serves uPlot from node_modules as ui/vendor", async () => {
  const res = await get("/ui/vendor/uPlot.iife.min.js");
  expect(res.status).toBe(200);
  expect(await res.text()).toContain("uPlot");
  expect((await get("/ui/vendor/uPlot.min.css")).status).toBe(200);
});

it("compresses the page when asked, and only the page", async () => {
  const page = await get("/", { "accept-encoding": "gzip" });
  expect(page.headers.get("content-encoding")).toBe("gzip");
  const stream = await get("/v1/stream", { "accept-encoding": "gzip" });
  expect(stream.headers.get("content-encoding")).toBeNull();
});

it("answers 404 for anything outside playground/ui", async () => {
  expect(((await (await get("/ui/nothing.js")).json()) as { error: { type: string } }).error.type).toBe("not_found_error");
  for (const path of ["/ui/../package.json", "/ui/%2e%2e/package.json", "/ui/..%2fpackage.json", "/ui/.hidden.js", "/ui/nothing.js", "/ui/app.ts", "/index.html", "/ui/vendor/other.js", "/ui/vendor/../../hosts/node/assets.ts"]) {
    expect((await get(path)).status, path).toBe(404);
  }
});
