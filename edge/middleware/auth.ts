import type { MiddlewareHandler } from "hono";
import type { ApiKeys, Tenants } from "../../ports/tenants.ts";
import type { AppEnv } from "../env.ts";
import { ApiError } from "../errors.ts";

const unauthorized = (message: string) =>
  new ApiError(401, message, "authentication_error", null, "invalid_api_key", { "WWW-Authenticate": 'Bearer realm="switchyard"' });

/**
 * Bearer auth. Admin keys pass `admin` routes; tenant keys pass `tenant` routes and set the tenant.
 * A revoked key, or a key of a disabled tenant, is a 401 like an unknown one.
 */
export function requireKey(role: "admin" | "tenant", keys: ApiKeys, tenants: Tenants): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized("Missing bearer token: send 'Authorization: Bearer YOUR_API_KEY'.");
    const key = await keys.verify(match[1]);
    if (!key) throw unauthorized("Incorrect or revoked API key provided.");
    if (key.role !== role) {
      throw new ApiError(403, `This route needs ${role === "admin" ? "an admin" : "a tenant"} key.`, "permission_error", null, "wrong_key_role");
    }
    if (role === "tenant") {
      const tenant = key.tenantId ? await tenants.get(key.tenantId) : undefined;
      if (!tenant || tenant.disabled) throw unauthorized("This API key's tenant is disabled.");
      c.set("tenant", tenant);
    }
    c.set("role", role);
    await next();
  };
}
