import { readFileSync } from "node:fs";

/** Switchyard's version, from the repository's package.json (read once). */
export const SWITCHYARD_VERSION: string = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
