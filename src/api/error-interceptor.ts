/**
 * Internal: the one place where every call ends. It translates every error
 * a handler throws (unary, or while a stream is being produced) through
 * toConnectError, and reports each call's outcome (method, status code,
 * duration, request id) for metrics and logs — in the same wrapper, so a
 * stream's messages pass through one extra step, not two.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { toConnectError } from "./connect-errors.js";

/** How a call ended. */
export interface CallOutcome {
  /** "/package.Service/Method" */
  method: string;
  /** The status code's name ("ok", "not_found", …). */
  code: string;
  seconds: number;
  /** The client's x-request-id, if it sent one. */
  requestId: string | undefined;
}

export interface ErrorInterceptorOptions {
  /** An internal error, with the request id of its call (the client's, or one made for it and sent back in x-request-id); the cause is never sent. */
  onInternal(error: unknown, requestId: string): void;
  /** Every call's end. */
  onCallEnd?(outcome: CallOutcome): void;
}

const CODE_NAMES = new Map<number, string>([
  [0, "ok"],
  ...Object.entries(Code)
    .filter((entry): entry is [string, number] => typeof entry[1] === "number")
    .map(([name, value]): [number, string] => [value, snakeCase(name)]),
]);

export function createErrorInterceptor(options: ErrorInterceptorOptions): Interceptor {
  const onCallEnd = options.onCallEnd;
  return (next) => async (request) => {
    const started = performance.now();
    const requestId = request.header.get("x-request-id") ?? undefined;
    const method = `/${request.service.typeName}/${request.method.name}`;
    const end = (code: number): void =>
      onCallEnd?.({
        method,
        code: CODE_NAMES.get(code) ?? String(code),
        seconds: (performance.now() - started) / 1000,
        requestId,
      });
    const translate = (error: unknown): ConnectError => {
      const translated = toConnectError(error);
      if (translated.code === Code.Internal) {
        // The client gets the id its failure is logged under, sent or made here.
        const id = requestId ?? randomUUID();
        translated.metadata.set("x-request-id", id);
        options.onInternal(error, id);
      }
      end(translated.code);
      return translated;
    };
    let response;
    try {
      response = await next(request);
    } catch (error) {
      throw translate(error);
    }
    if (!response.stream) {
      end(0);
      return response;
    }
    return {
      ...response,
      message: translateStream(response, translate, end),
    } as StreamResponse;
  };
}

async function* translateStream<T>(
  response: { message: AsyncIterable<T> },
  translate: (error: unknown) => Error,
  end: (code: number) => void,
): AsyncIterable<T> {
  let settled = false;
  try {
    yield* response.message;
    settled = true;
    end(0);
  } catch (error) {
    settled = true;
    throw translate(error);
  } finally {
    // Stopped from outside (the client went away): neither ended nor failed.
    if (!settled) end(Code.Canceled);
  }
}

function snakeCase(name: string): string {
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
