// The parsing process does not inherit the parent's TypeScript loader (vitest's or tsx's), so register tsx here.
import { register } from "tsx/esm/api";

register();
await import("./parse-worker.ts");
