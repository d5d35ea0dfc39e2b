import { expect } from "vitest";
import { PlaneError, type PlaneErrorKind } from "../../ports/errors.ts";

/** Awaits a port call that must be refused with a PlaneError of `kind`, and returns the error. */
export async function refused(promise: Promise<unknown>, kind: PlaneErrorKind): Promise<PlaneError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PlaneError);
  expect((error as PlaneError).kind).toBe(kind);
  return error as PlaneError;
}
