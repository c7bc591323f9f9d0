/**
 * The client's errors: every failure a CommyClient or a LocalService
 * reports is the project's one CommyError (src/core/commy-error.ts), with
 * its ErrorCode. `toCommyError` is the one place that turns what the wire
 * (or the transport) produced into it; the guards below narrow an unknown
 * caught value to one code.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ErrorDetail,
  ErrorCode as WireErrorCode,
  ErrorDetailSchema,
} from "../../gen/commy/v1/errors_pb.js";
import { CommyError, type ErrorCode, isCommyError } from "../core/commy-error.js";

export { CommyError, isCommyError, type ErrorCode };

/**
 * The ErrorCode for a Connect status that came without an ErrorDetail (one
 * raised by a transport, a proxy or connect-es itself rather than by Commy).
 * A reset or refused connection, a stream cut by the peer, and a cancel
 * that the caller did not ask for all mean the connection was lost.
 */
const FROM_CONNECT_CODE: Record<Code, ErrorCode> = {
  [Code.Canceled]: "CONNECTION_LOST",
  [Code.Unknown]: "INTERNAL_ERROR",
  [Code.InvalidArgument]: "INVALID_REQUEST",
  [Code.DeadlineExceeded]: "TIMEOUT",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "VERSION_CONFLICT",
  [Code.Aborted]: "CONNECTION_LOST",
  [Code.OutOfRange]: "INVALID_REQUEST",
  [Code.Unimplemented]: "INTERNAL_ERROR",
  [Code.Internal]: "INTERNAL_ERROR",
  [Code.Unavailable]: "CONNECTION_LOST",
  [Code.DataLoss]: "INTERNAL_ERROR",
  [Code.Unauthenticated]: "UNAUTHORIZED",
};

/** The ErrorCode of a wire ErrorDetail value, or undefined for one this client does not know. */
function fromWireCode(code: WireErrorCode): ErrorCode | undefined {
  const name = WireErrorCode[code] as string | undefined;
  return name === undefined || name === "UNSPECIFIED" ? undefined : (name as ErrorCode);
}

/**
 * Internal: the CommyError for anything a call threw. The ErrorDetail the
 * server attaches wins; without one, the Connect code decides; anything
 * else (a bug, a stray exception) is INTERNAL_ERROR. The original error is
 * kept as the `cause`.
 */
export function toCommyError(error: unknown): CommyError {
  if (error instanceof CommyError) return error;
  const connectError = ConnectError.from(error);
  const [detail] = connectError.findDetails(ErrorDetailSchema);
  const code =
    (detail === undefined ? undefined : fromWireCode(detail.code)) ??
    FROM_CONNECT_CODE[connectError.code];
  const message = detail?.message || connectError.rawMessage;
  return new CommyError(code, message, { cause: error });
}

/**
 * Internal: the CommyError an ErrorDetail sent inside a message describes
 * (a SubscriptionEnded reason); a missing or unknown code is INTERNAL_ERROR.
 */
export function fromErrorDetail(detail: ErrorDetail | undefined, fallback: string): CommyError {
  const code = detail === undefined ? undefined : fromWireCode(detail.code);
  return new CommyError(code ?? "INTERNAL_ERROR", detail?.message || fallback);
}

/** A CommyError of one known code, as the guards below narrow to. */
export type CommyErrorOf<C extends ErrorCode> = CommyError & { readonly code: C };

const guard =
  <C extends ErrorCode>(code: C) =>
  (error: unknown): error is CommyErrorOf<C> =>
    isCommyError(error, code);

/** The tenant, service or variable does not exist (or was deleted meanwhile). */
export const isNotFound = guard("NOT_FOUND");
/** The caller is authenticated but may not do this (or, for local files, is not on the server's machine). */
export const isPermissionDenied = guard("PERMISSION_DENIED");
/** The call carried no credentials, or ones that are wrong, expired or revoked. */
export const isUnauthorized = guard("UNAUTHORIZED");
/** A create named something that already exists. */
export const isAlreadyExists = guard("ALREADY_EXISTS");
/** The request is malformed whatever the server's state (a bad name, a bad page token). */
export const isInvalidRequest = guard("INVALID_REQUEST");
/** The server (or this client) failed; the message says no more than is safe. */
export const isInternal = guard("INTERNAL_ERROR");
/** The connection to the server was lost or could not be made; reads were retried already. */
export const isConnectionLost = guard("CONNECTION_LOST");
/** The call did not complete within its timeout. */
export const isTimeout = guard("TIMEOUT");
/** A compare-and-set write found another version; nothing was written. */
export const isVersionConflict = guard("VERSION_CONFLICT");
/** A limit was reached (a value too large for its variable, a full service file, a stalled stream). */
export const isResourceExhausted = guard("RESOURCE_EXHAUSTED");
