import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { extname, join } from "node:path";
import type { Asset, StaticAssets } from "../../ports/assets.ts";

/**
 * The playground's files on Node: the repository's playground/ folder as it is (no build step), and
 * the browser libraries straight from node_modules under ui/vendor/ (the names `npm run playground:vendor`
 * copies for Workers' [assets]). The edge checks paths; this only maps them.
 */
export const PLAYGROUND_DIR = join(import.meta.dirname, "../../playground");

const require = createRequire(import.meta.url);
const uplotDist = join(require.resolve("uplot"), "..");

/** ui/vendor/<name> -> its file in node_modules. */
export const VENDOR_FILES: Readonly<Record<string, string>> = {
  "uPlot.iife.min.js": join(uplotDist, "uPlot.iife.min.js"),
  "uPlot.min.css": join(uplotDist, "uPlot.min.css"),
};

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json; charset=utf-8",
};

export function playgroundAssets(dir = PLAYGROUND_DIR): StaticAssets {
  return {
    async get(path: string): Promise<Asset | undefined> {
      const contentType = TYPES[extname(path)];
      if (!contentType) return undefined;
      const vendor = path.startsWith("ui/vendor/") ? VENDOR_FILES[path.slice("ui/vendor/".length)] : undefined;
      try {
        return { body: await readFile(vendor ?? join(dir, path)), contentType };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "EISDIR") return undefined;
        throw err;
      }
    },
  };
}
