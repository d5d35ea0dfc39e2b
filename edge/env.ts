import type { Logger } from "pino";
import type { Tenant } from "../services/store/schema.ts";

/** Hono context variables every route may read. */
export interface AppVariables {
  requestId: string;
  logger: Logger;
  /** Set by the auth middleware on tenant routes. */
  tenant: Tenant;
  /** Set by the auth middleware: which kind of key authenticated this request. */
  role: "admin" | "tenant";
}

export interface AppEnv {
  Variables: AppVariables;
}
