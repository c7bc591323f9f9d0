/** The 64-byte value the shm suite's latency writer publishes. */
export const VALUE_BYTES = 64;
/** The writer's CLOCK_MONOTONIC stamp, in ns (BigInt64 LE). */
export const STAMP_OFFSET = 0;
/** The write's sequence number within the run, 1-based (UInt32 LE). */
export const SEQ_OFFSET = 8;
