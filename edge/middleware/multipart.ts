import type { Context } from "hono";
import { ApiError, badRequest } from "../errors.ts";

/** A parsed multipart form: each field's value, or every value when the field repeats. */
export type Form = Record<string, string | File | (string | File)[]>;

/**
 * Reads a multipart/form-data body. A body the platform cannot parse (no or wrong boundary, empty,
 * truncated) is the client's fault: a 400 naming the problem, never a 500.
 */
export async function readMultipart(c: Context): Promise<Form> {
  const type = c.req.header("content-type") ?? "";
  if (!/;\s*boundary=("?)[^";]+\1/i.test(type)) {
    throw badRequest("The multipart/form-data Content-Type has no boundary parameter.", null, "invalid_multipart");
  }
  try {
    return (await c.req.parseBody({ all: true })) as Form;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw badRequest(`Could not read the multipart/form-data body: ${(e as Error).message}.`, null, "invalid_multipart");
  }
}
