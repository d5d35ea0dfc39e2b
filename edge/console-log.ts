import type { Log } from "./env.ts";

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

/** A JSON-lines logger over `console`, for runtimes without pino's Node transport (Workers). */
export function consoleLog(level: LogLevel = "info", bindings: Record<string, unknown> = {}): Log {
  const write = (at: Exclude<LogLevel, "silent">) => (fields: object | string, message?: string) => {
    if (LEVELS[at] < LEVELS[level]) return;
    const record = typeof fields === "string" ? { msg: fields } : { ...fields, msg: message };
    console.log(JSON.stringify({ level: at, time: Date.now(), ...bindings, ...record }, errorReplacer));
  };
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: (more) => consoleLog(level, { ...bindings, ...more }),
  };
}

function errorReplacer(_key: string, value: unknown) {
  return value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
}
