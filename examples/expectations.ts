/**
 * The examples are smoke tests too: each outcome they show is checked,
 * and anything unexpected ends the program with a non-zero exit code.
 */
import { type CommyErrorOf, type ErrorCode, isCommyError } from "../src/client/index.js";

/** Fails the example unless `condition` holds. */
export function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`unexpected: ${what}`);
}

/**
 * Awaits `call` and returns its error, printing its code and message;
 * fails the example if the call succeeded or failed with another code.
 */
export async function expectRefused<C extends ErrorCode>(
  code: C,
  what: string,
  call: Promise<unknown>,
): Promise<CommyErrorOf<C>> {
  try {
    await call;
  } catch (error) {
    if (!isCommyError(error, code)) throw error;
    console.log(`  refused: ${what}: ${error.code} (${error.message})`);
    return error as CommyErrorOf<C>;
  }
  throw new Error(`unexpected: ${what} succeeded, expected ${code}`);
}

/** Prints what a call did and returns its result. */
export async function expectAllowed<T>(what: string, call: Promise<T>): Promise<T> {
  const result = await call;
  console.log(`  allowed: ${what}`);
  return result;
}
