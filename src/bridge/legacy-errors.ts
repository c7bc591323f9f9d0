/**
 * Core errors as the legacy protocol's `Error` message: one translation,
 * like src/api/connect-errors.ts for the Connect API.
 */
import { CommyError, type ErrorCode } from "../core/commy-error.js";
import type { LegacyErrorCode, ServerMessage } from "./legacy-messages.js";

/**
 * The legacy SDK knows only the first eight codes; a code added later is
 * sent as the nearest one it can parse (docs/protocol.md, legacy bridge).
 */
const LEGACY_CODES: Record<ErrorCode, LegacyErrorCode> = {
  NOT_FOUND: "NOT_FOUND",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  UNAUTHORIZED: "UNAUTHORIZED",
  ALREADY_EXISTS: "ALREADY_EXISTS",
  INVALID_REQUEST: "INVALID_REQUEST",
  INTERNAL_ERROR: "INTERNAL_ERROR",
  CONNECTION_LOST: "CONNECTION_LOST",
  TIMEOUT: "TIMEOUT",
  // A compare-and-set miss: the request did not fit the variable's state.
  VERSION_CONFLICT: "INVALID_REQUEST",
  // A size or count limit: the request cannot be served as asked.
  RESOURCE_EXHAUSTED: "INVALID_REQUEST",
};

/** What the client is told about a failure; anything but a CommyError is internal and not described. */
export function legacyError(error: unknown): ServerMessage & { type: "Error" } {
  if (error instanceof CommyError) {
    return { type: "Error", data: { code: LEGACY_CODES[error.code], message: error.message } };
  }
  return { type: "Error", data: { code: "INTERNAL_ERROR", message: "internal error" } };
}
