/**
 * The one translation of Commy errors into Connect/gRPC errors: the status
 * code of DESIGN §3 plus an ErrorDetail carrying the ErrorCode, so that a
 * client in any language can branch on it. Anything that is not a
 * CommyError becomes INTERNAL_ERROR with no path or stack in it.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode as WireErrorCode, ErrorDetailSchema } from "../../gen/commy/v1/errors_pb.js";
import { CommyError, type ErrorCode } from "../core/commy-error.js";

const CONNECT_CODES: Record<ErrorCode, Code> = {
  NOT_FOUND: Code.NotFound,
  PERMISSION_DENIED: Code.PermissionDenied,
  UNAUTHORIZED: Code.Unauthenticated,
  ALREADY_EXISTS: Code.AlreadyExists,
  INVALID_REQUEST: Code.InvalidArgument,
  INTERNAL_ERROR: Code.Internal,
  CONNECTION_LOST: Code.Unavailable,
  TIMEOUT: Code.DeadlineExceeded,
  VERSION_CONFLICT: Code.FailedPrecondition,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
};

/** For errors Connect itself raised (bad request bodies, deadlines, cancellation). */
const FROM_CONNECT: Partial<Record<Code, ErrorCode>> = {
  [Code.InvalidArgument]: "INVALID_REQUEST",
  [Code.DeadlineExceeded]: "TIMEOUT",
  [Code.Unauthenticated]: "UNAUTHORIZED",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "VERSION_CONFLICT",
  [Code.Unavailable]: "CONNECTION_LOST",
  [Code.Canceled]: "CONNECTION_LOST",
};

/**
 * Why a stream's requests could not be read (a frame that is no message of
 * the method, one over the size limit, a stream cut in the middle of a
 * frame), as the error that ends the call; undefined when the client went
 * away, which no status reaches.
 */
export function requestStreamError(error: unknown): CommyError | undefined {
  if (error instanceof CommyError) return error;
  if (!(error instanceof ConnectError)) {
    return new CommyError("INTERNAL_ERROR", "internal error", { cause: error });
  }
  if (error.code === Code.Canceled || error.code === Code.Aborted) return undefined;
  return new CommyError(FROM_CONNECT[error.code] ?? "INVALID_REQUEST", error.rawMessage, {
    cause: error,
  });
}

/** The wire enum value of an ErrorCode. */
export function toWireErrorCode(code: ErrorCode): WireErrorCode {
  return WireErrorCode[code];
}

/** The ConnectError a client receives for `error`. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof CommyError) return withDetail(error.code, error.message, error);
  if (error instanceof ConnectError) {
    if (error.findDetails(ErrorDetailSchema).length > 0) return error;
    const code = FROM_CONNECT[error.code];
    if (code !== undefined) return withDetail(code, error.rawMessage, error, error.code);
  }
  return withDetail("INTERNAL_ERROR", "internal error", error);
}

function withDetail(
  code: ErrorCode,
  message: string,
  cause: unknown,
  connectCode?: Code,
): ConnectError {
  return new ConnectError(
    message,
    connectCode ?? CONNECT_CODES[code],
    undefined,
    [{ desc: ErrorDetailSchema, value: { code: toWireErrorCode(code), message } }],
    cause,
  );
}
