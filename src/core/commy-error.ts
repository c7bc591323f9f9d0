/**
 * The one error type of Commy, with a closed set of codes. Core operations
 * throw it; each transport translates it once (src/api/connect-errors.ts,
 * src/bridge/legacy-errors.ts); the client library throws it too.
 */

/** What went wrong, as the proto's ErrorCode names it (without the prefix). */
export type ErrorCode =
  | "NOT_FOUND"
  | "PERMISSION_DENIED"
  | "UNAUTHORIZED"
  | "ALREADY_EXISTS"
  | "INVALID_REQUEST"
  | "INTERNAL_ERROR"
  | "CONNECTION_LOST"
  | "TIMEOUT"
  | "VERSION_CONFLICT"
  | "RESOURCE_EXHAUSTED";

/** A failure with a code that clients can branch on and a message for people. */
export class CommyError extends Error {
  override readonly name = "CommyError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `error` is a CommyError, optionally of the given code. */
export function isCommyError(error: unknown, code?: ErrorCode): error is CommyError {
  return error instanceof CommyError && (code === undefined || error.code === code);
}

export const notFound = (what: string): CommyError =>
  new CommyError("NOT_FOUND", `${what} does not exist`);
export const alreadyExists = (what: string): CommyError =>
  new CommyError("ALREADY_EXISTS", `${what} already exists`);
export const invalidRequest = (message: string): CommyError =>
  new CommyError("INVALID_REQUEST", message);
