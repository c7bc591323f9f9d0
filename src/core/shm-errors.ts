/** Internal: the one translation of service-file errors into CommyErrors. */
import { ShmError, type ShmErrorCode } from "../shm/index.js";
import { CommyError, type ErrorCode } from "./commy-error.js";

const CODES: Record<ShmErrorCode, ErrorCode> = {
  NOT_FOUND: "NOT_FOUND",
  EXISTS: "ALREADY_EXISTS",
  INVALID: "INVALID_REQUEST",
  TOO_LARGE: "INVALID_REQUEST",
  VERSION_CONFLICT: "VERSION_CONFLICT",
  FULL: "RESOURCE_EXHAUSTED",
  LOCKED: "TIMEOUT",
  // The service went away under the call: to the caller it is not there.
  DELETED: "NOT_FOUND",
  CLOSED: "NOT_FOUND",
  // The owner relocates, so these mean a broken file or a bug.
  CAPACITY: "INTERNAL_ERROR",
  FOREIGN: "INTERNAL_ERROR",
  CORRUPT: "INTERNAL_ERROR",
  READ_ONLY: "INTERNAL_ERROR",
};

/** A CommyError for a ShmError (internal ones keep the original as cause, never in the message). */
export function fromShmError(error: ShmError): CommyError {
  const code = CODES[error.code];
  const message = code === "INTERNAL_ERROR" ? "the service file could not be used" : error.message;
  return new CommyError(code, message, { cause: error });
}

/** Runs `operation`, translating ShmErrors. */
export function withShmErrors<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    throw error instanceof ShmError ? fromShmError(error) : error;
  }
}
