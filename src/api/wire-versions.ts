/**
 * Internal: versions travel as uint64 and are exact in the core up to 2^53.
 * A larger one becomes an inexact number here, which the core refuses with
 * INVALID_REQUEST after its permission check (the house order).
 */
export function versionFromWire(version: bigint | undefined): number | undefined {
  return version === undefined ? undefined : Number(version);
}
