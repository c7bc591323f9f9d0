/**
 * The `commy` command's exit codes: 0 for success, 2 for a usage mistake
 * (caught before anything was sent), 1 for an internal or unknown
 * failure, and one code per ErrorCode so that scripts can branch on what
 * the server said without parsing messages.
 */
// The error class itself, not the client's barrel: importing the client
// library would load connect-es for commands that never call a server.
import { type ErrorCode, isCommyError } from "../core/commy-error.js";

/** Success. */
export const EXIT_OK = 0;
/** An internal error, or a failure that has no ErrorCode. */
export const EXIT_FAILURE = 1;
/** Bad arguments, options, config file or value encoding; nothing was sent. */
export const EXIT_USAGE = 2;

/** The exit code of each ErrorCode. Values are appended, never renumbered. */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  INTERNAL_ERROR: EXIT_FAILURE,
  NOT_FOUND: 3,
  PERMISSION_DENIED: 4,
  UNAUTHORIZED: 5,
  ALREADY_EXISTS: 6,
  INVALID_REQUEST: 7,
  CONNECTION_LOST: 8,
  TIMEOUT: 9,
  VERSION_CONFLICT: 10,
  RESOURCE_EXHAUSTED: 11,
};

/** A mistake in how the command was called, reported with exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The exit code for a failure. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE;
  if (isCommyError(error)) return EXIT_CODES[error.code];
  return EXIT_FAILURE;
}

/** The exit-code table as the root command's help shows it. */
export function exitCodeHelp(): string {
  const rows: [number, string][] = [
    [EXIT_OK, "success"],
    [EXIT_FAILURE, "INTERNAL_ERROR, or a failure without an error code"],
    [EXIT_USAGE, "usage: bad arguments, options, config file or value encoding"],
    ...Object.entries(EXIT_CODES)
      .filter(([, code]) => code > EXIT_USAGE)
      .map(([name, code]): [number, string] => [code, name]),
  ];
  rows.sort((a, b) => a[0] - b[0]);
  return [
    "Exit codes:",
    ...rows.map(([code, what]) => `  ${String(code).padStart(2)}  ${what}`),
  ].join("\n");
}
