import { Hono, type Context } from "hono";
import { compress } from "hono/compress";
import type { StaticAssets } from "../../ports/assets.ts";
import type { AppEnv } from "../env.ts";
import { notFound } from "../errors.ts";

/**
 * The playground page: GET / is index.html, GET /ui/* its scripts and styles, compressed. The page
 * talks to /v1 with the key the user types (kept in session storage, sent as the bearer header), so
 * nothing here needs auth. A strict content security policy allows only this origin: no inline
 * script, no CDN.
 */
const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "cache-control": "no-cache",
};

/** Only plain names: no `..`, no hidden files, no backslashes. */
const SAFE_PATH = /^ui\/(?:[\w-]+\/)*[\w-]+(?:\.[\w-]+)+$/;

export function playgroundRoutes(assets: StaticAssets): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  // Per route: a `use("*")` here would reach every route of the app this is mounted in (and buffer SSE).
  app.get("/", compress(), (c) => serve(c, assets, "index.html"));
  app.get("/ui/*", compress(), (c) => serve(c, assets, c.req.path.slice(1)));
  return app;
}

async function serve(c: Context<AppEnv>, assets: StaticAssets, path: string) {
  const asset = path === "index.html" || SAFE_PATH.test(path) ? await assets.get(path) : undefined;
  if (!asset) throw notFound(`No playground asset at '/${path}'.`);
  return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, { ...SECURITY_HEADERS, "content-type": asset.contentType });
}
