/**
 * The value every writer of the stream suite publishes (a Commy variable's
 * data, a Redis message, an echo payload): 64 bytes carrying the writer's
 * CLOCK_MONOTONIC stamp and a sequence number, so that the receiving
 * process computes the one-way latency itself (see bench/lib/one-way.ts on
 * why one clock serves every process of the machine).
 */
export const VALUE_BYTES = 64;
/** The writer's stamp, ns of CLOCK_MONOTONIC (BigInt64 LE). */
const STAMP_OFFSET = 0;
/** The write's sequence number within a run, 1-based (UInt32 LE). */
const SEQ_OFFSET = 8;
/** The sequence number of a throughput run's last write: everything before it has been sent. */
export const END_SEQ = 0xffff_ffff;

/** Writes `seq` and `stamp` into `value` (VALUE_BYTES long) and returns it. */
export function stampValue(value: Uint8Array, seq: number, stamp: bigint): Uint8Array {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  view.setBigInt64(STAMP_OFFSET, stamp, true);
  view.setUint32(SEQ_OFFSET, seq, true);
  return value;
}

/** The sequence number and stamp a received value carries (seq 0: not a bench value). */
export function readStamp(value: Uint8Array): { seq: number; stamp: bigint } {
  if (value.byteLength < SEQ_OFFSET + 4) return { seq: 0, stamp: 0n };
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return { seq: view.getUint32(SEQ_OFFSET, true), stamp: view.getBigInt64(STAMP_OFFSET, true) };
}
