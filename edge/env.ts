import type { Tenant } from "../ports/tenants.ts";

/** The structured logger the edge needs: pino on Node, a console-JSON logger on Workers. */
export interface Log {
  debug(fields: object, message?: string): void;
  info(fields: object | string, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
  child(bindings: Record<string, unknown>): Log;
}

/** Hono context variables every route may read. */
export interface AppVariables {
  requestId: string;
  /** performance.now() when the request arrived, for timings that include the edge's own work. */
  startedAt: number;
  logger: Log;
  /** Set by the auth middleware on tenant routes. */
  tenant: Tenant;
  /** Set by the auth middleware: which kind of key authenticated this request. */
  role: "admin" | "tenant";
}

export interface AppEnv {
  Variables: AppVariables;
}
