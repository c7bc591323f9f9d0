/**
 * How a CommyClient runs one unary call: a deadline, the caller's
 * AbortSignal, and retries for calls that are safe to repeat (reads, which
 * have no side effects) when the connection was lost. Writes are sent once:
 * a write whose connection broke may have happened, and repeating it would
 * write twice.
 */
import type { CallOptions as ConnectCallOptions } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { CommyError, toCommyError } from "./client-errors.js";

/** Options every client method takes. */
export interface CallOptions {
  /**
   * Cancels the call. A cancelled call rejects with the signal's reason
   * (an AbortError DOMException unless the caller gave another), as
   * `fetch` does, not with a CommyError.
   */
  signal?: AbortSignal;
  /**
   * Milliseconds the whole call may take, retries included, before it
   * fails with TIMEOUT. Overrides the client's default; 0 means no limit.
   */
  timeoutMs?: number;
}

/** When and how often reads are tried again after the connection was lost. */
export interface RetryPolicy {
  /** Tries in all, the first included (1 turns retries off). Default 3. */
  maxAttempts: number;
  /** Pause before the first retry; it doubles after each. Default 50 ms. */
  initialBackoffMs: number;
  /** Longest pause between tries. Default 1 s. */
  maxBackoffMs: number;
}

/** The retry policy a client uses unless told otherwise. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 3,
  initialBackoffMs: 50,
  maxBackoffMs: 1_000,
};

/** One try of a call, with the options connect-es should send it with. */
export type Attempt<T> = (options: ConnectCallOptions) => Promise<T>;

/**
 * Internal: runs a call that must not be repeated (it may change
 * something), translating its failure into a CommyError.
 */
export async function callOnce<T>(
  attempt: Attempt<T>,
  options: CallOptions | undefined,
  defaultTimeoutMs: number,
): Promise<T> {
  const timeoutMs = options?.timeoutMs ?? defaultTimeoutMs;
  const signal = options?.signal;
  try {
    return await attempt(timeoutMs > 0 ? { signal, timeoutMs } : { signal });
  } catch (error) {
    throw failure(error, signal);
  }
}

/**
 * Internal: runs a call that has no side effects, trying again with
 * growing pauses while the connection is lost, within one deadline for all
 * tries.
 */
export async function callWithRetries<T>(
  attempt: Attempt<T>,
  options: CallOptions | undefined,
  defaultTimeoutMs: number,
  policy: RetryPolicy,
): Promise<T> {
  const timeoutMs = options?.timeoutMs ?? defaultTimeoutMs;
  const signal = options?.signal;
  const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : Infinity;
  for (let tried = 1, backoff = policy.initialBackoffMs; ; tried++) {
    const remaining = Math.ceil(deadline - performance.now());
    try {
      return await attempt(deadline === Infinity ? { signal } : { signal, timeoutMs: remaining });
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason as unknown;
      const translated = toCommyError(error);
      if (translated.code !== "CONNECTION_LOST" || tried >= policy.maxAttempts) throw translated;
      // Jitter spreads the retries of many clients after a shared outage.
      const pause = Math.min(backoff, policy.maxBackoffMs) * (0.5 + Math.random() / 2);
      if (performance.now() + pause >= deadline) {
        throw new CommyError("TIMEOUT", `no answer within ${timeoutMs} ms`, {
          cause: translated,
        });
      }
      await pauseUnlessAborted(pause, signal);
      backoff *= 2;
    }
  }
}

/** What a failed call rejects with: the caller's own abort reason, else a CommyError. */
function failure(error: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted === true) return signal.reason as unknown;
  return toCommyError(error);
}

async function pauseUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw signal?.reason as unknown;
  }
}
