/**
 * Static assets of the playground (the web page the edge serves at `/`), behind a port so that each
 * host reads them its own way: Node from the repository's playground/ folder (hosts/node/assets.ts),
 * Workers through the `[assets]` binding of wrangler.toml over the same folder (hosts/workers/worker.ts).
 */

export interface Asset {
  body: Uint8Array;
  /** The media type, with its charset for text. */
  contentType: string;
}

export interface StaticAssets {
  /** The asset at `path` (relative, `/`-separated: `index.html`, `ui/app.js`), or undefined. */
  get(path: string): Promise<Asset | undefined>;
}
