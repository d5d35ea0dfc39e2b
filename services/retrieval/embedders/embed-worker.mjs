// A worker thread does not inherit the parent's TypeScript loader (vitest's or tsx's), so register tsx here.
import { register } from "tsx/esm/api";

register();
await import("./embed-worker.ts");
