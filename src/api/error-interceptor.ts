/**
 * Internal: translates every error a handler throws (unary, or while a
 * stream is being produced) through toConnectError, in one place.
 */
import { Code, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { toConnectError } from "./connect-errors.js";

export function createErrorInterceptor(onInternal: (error: unknown) => void): Interceptor {
  const translate = (error: unknown) => {
    const translated = toConnectError(error);
    if (translated.code === Code.Internal) onInternal(error);
    return translated;
  };
  return (next) => async (request) => {
    try {
      const response = await next(request);
      if (!response.stream) return response;
      return { ...response, message: translateStream(response, translate) } as StreamResponse;
    } catch (error) {
      throw translate(error);
    }
  };
}

async function* translateStream<T>(
  response: { message: AsyncIterable<T> },
  translate: (error: unknown) => Error,
): AsyncIterable<T> {
  try {
    yield* response.message;
  } catch (error) {
    throw translate(error);
  }
}
