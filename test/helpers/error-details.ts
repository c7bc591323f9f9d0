/**
 * Reading Commy's errors the way clients do: the status code plus the
 * commy.v1.ErrorDetail every error carries (DESIGN §3) — from a connect-es
 * ConnectError, and from the raw `grpc-status-details-bin` trailer that any
 * gRPC client (here grpc-js) receives.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { type Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import {
  type ErrorCode,
  type ErrorDetail,
  ErrorDetailSchema,
} from "../../gen/commy/v1/errors_pb.js";

export const ERROR_DETAIL_TYPE_URL = "type.googleapis.com/commy.v1.ErrorDetail";

/** What a Commy error looks like to a client. */
export interface ObservedError {
  code: Code;
  message: string;
  details: ErrorDetail[];
}

/** Awaits `call`, which must fail with a ConnectError; returns its code and ErrorDetails. */
export async function rejectionOf(call: Promise<unknown>): Promise<ObservedError> {
  let outcome: unknown;
  try {
    outcome = await call;
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError);
    const connectError = error as ConnectError;
    return {
      code: connectError.code,
      message: connectError.rawMessage,
      details: connectError.findDetails(ErrorDetailSchema),
    };
  }
  throw new Error(`expected the call to fail, it returned ${String(outcome)}`);
}

/**
 * Asserts that `call` fails with the Connect `code` and exactly one
 * ErrorDetail of `errorCode` whose message is the error's message.
 */
export async function expectCommyError(
  call: Promise<unknown>,
  code: Code,
  errorCode: ErrorCode,
): Promise<ObservedError> {
  const observed = await rejectionOf(call);
  expect({ code: observed.code, errorCodes: observed.details.map((d) => d.code) }).toEqual({
    code,
    errorCodes: [errorCode],
  });
  expect(observed.details[0]?.message).toBe(observed.message);
  return observed;
}

/** One google.protobuf.Any. */
export interface AnyMessage {
  typeUrl: string;
  value: Uint8Array;
}

/** A google.rpc.Status, as carried in grpc-status-details-bin. */
export interface RpcStatus {
  code: number;
  message: string;
  details: AnyMessage[];
}

/**
 * Decodes google.rpc.Status (1: int32 code, 2: string message, 3: repeated
 * Any) by hand, so that the test does not reuse the server's own decoder.
 */
export function decodeRpcStatus(bytes: Uint8Array): RpcStatus {
  const status: RpcStatus = { code: 0, message: "", details: [] };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) status.code = reader.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) status.message = reader.string();
    else if (field === 3 && wireType === WireType.LengthDelimited)
      status.details.push(decodeAny(reader.bytes()));
    else reader.skip(wireType, field);
  }
  return status;
}

function decodeAny(bytes: Uint8Array): AnyMessage {
  const any: AnyMessage = { typeUrl: "", value: new Uint8Array() };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) any.typeUrl = reader.string();
    else if (field === 2 && wireType === WireType.LengthDelimited) any.value = reader.bytes();
    else reader.skip(wireType, field);
  }
  return any;
}

/** The ErrorDetails inside a google.rpc.Status. */
export function errorDetailsOf(status: RpcStatus): ErrorDetail[] {
  return status.details
    .filter((any) => any.typeUrl === ERROR_DETAIL_TYPE_URL)
    .map((any) => fromBinary(ErrorDetailSchema, any.value));
}

/** A message fit for a remote client: no file system path, no stack frame. */
export function expectNoServerInternals(message: string, dataDir: string): void {
  expect(message).not.toContain(dataDir);
  expect(message).not.toMatch(/\/(tmp|home|work|var|usr)\//);
  expect(message).not.toMatch(/\.commy\b|\.ts:\d|\.js:\d|\n\s+at /);
}
