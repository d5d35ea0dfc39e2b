// The engine worker thread's entry: tsx compiles the TypeScript sources on load (as bin/switchyard.mjs does).
import { register } from "tsx/esm/api";

register();
await import("./engine-worker.ts");
