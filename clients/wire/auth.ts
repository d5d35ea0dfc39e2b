/**
 * Edge-to-node authentication: a shared secret sent as `Authorization: Bearer <secret>`.
 * SWITCHYARD_NODE_SECRET holds a comma-separated list: a node accepts any of them, a client sends the
 * first, so a secret is rotated by putting the new one first everywhere, then dropping the old.
 * The secret travels in clear, so nodes sit on a private network or behind TLS (a signed header with a
 * timestamp against replay is the upgrade path; see ARCHITECTURE.md).
 */

export const MIN_SECRET_LENGTH = 16;

/** The secrets of a SWITCHYARD_NODE_SECRET value, in order (blank entries dropped). */
export function parseSecrets(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

export function authorizationHeader(secret: string): string {
  return `Bearer ${secret}`;
}

/** Whether an Authorization header carries one of `secrets` (compared in constant time per secret). */
export function isAuthorized(header: string | undefined | null, secrets: readonly string[]): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? "");
  if (!match) return false;
  let ok = false;
  for (const secret of secrets) ok = constantTimeEqual(match[1]!, secret) || ok;
  return ok;
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
