/** Internal: the one translation of service-file errors into CommyErrors. */
import { setTimeout as delay } from "node:timers/promises";
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

/**
 * Messages for clients where the file's own would name a path on the
 * server; the original stays the cause, for the log.
 */
const CLIENT_MESSAGES: Partial<Record<ShmErrorCode, string>> = {
  FULL: "the service has reached its maximum size",
  DELETED: "the service was deleted",
  CLOSED: "the service was deleted",
  LOCKED: "the variable is held by another writer; try again",
  CAPACITY: "the service file could not be used",
  FOREIGN: "the service file could not be used",
  CORRUPT: "the service file could not be used",
  READ_ONLY: "the service file could not be used",
};

/** A CommyError for a ShmError. */
export function fromShmError(error: ShmError): CommyError {
  return new CommyError(CODES[error.code], CLIENT_MESSAGES[error.code] ?? error.message, {
    cause: error,
  });
}

/** How long a write waits for a variable that another live process is writing. */
export const LOCK_WAIT_MS = 2_000;

/**
 * Runs `operation`, translating ShmErrors; while another live process holds
 * the variable's lock, tries again with growing pauses (the event loop stays
 * free) until LOCK_WAIT_MS have passed, then fails with TIMEOUT. A call's
 * `signal` (its deadline, or the client going away) ends the wait sooner:
 * nothing is written after the caller stopped waiting for the answer.
 */
export async function withShmErrorsWaitingForLocks<T>(
  operation: () => T,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    if (signal?.aborted === true) {
      throw new CommyError(
        "TIMEOUT",
        "the call ended (deadline or cancellation) while the variable was held by another writer",
      );
    }
    try {
      return operation();
    } catch (error) {
      if (!(error instanceof ShmError)) throw error;
      if (error.code !== "LOCKED" || Date.now() + pause > deadline) throw fromShmError(error);
    }
    try {
      await delay(pause, undefined, signal === undefined ? undefined : { signal });
    } catch {
      // Aborted: the check at the top of the loop says so.
    }
  }
}

/** Runs `operation`, translating ShmErrors. */
export function withShmErrors<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    throw error instanceof ShmError ? fromShmError(error) : error;
  }
}
