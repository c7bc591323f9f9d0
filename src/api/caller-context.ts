/**
 * Internal: how the Caller of a Connect call travels from the transport
 * (socket address) and the auth interceptor to the handlers.
 */
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../core/caller.js";

/** The caller of the current call; the auth interceptor replaces it. */
export const callerKey = createContextKey<Caller>(
  { principal: undefined },
  { description: "commy caller" },
);

/** The caller of a handler's call. */
export function callerOf(context: HandlerContext): Caller {
  return context.values.get(callerKey);
}
