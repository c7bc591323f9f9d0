/**
 * Floor: two processes share a MAP_SHARED file as a SharedArrayBuffer; the
 * bench stores a stamp and bumps a sequence word, the reader child spins on
 * that word. Nothing sleeps, so this is the cost of the memory itself
 * (cache-line transfer between cores) plus reading the clock.
 */
import { closeSync, ftruncateSync, openSync } from "node:fs";
import { join } from "node:path";
import { type ReaderRun, ReaderChild, stampedWrites } from "../lib/one-way.js";
import { native } from "../../src/shm/native.js";

export const SAB_FLOOR_BYTES = 4096;
/** Int32 index of the sequence word. */
export const SEQ_WORD = 0;
/** BigInt64 index of the stamp (byte 8, same cache line as the word). */
export const STAMP_SLOT = 1;

const CHILD = new URL("./sab-spin-child.ts", import.meta.url);

export class SabSpinFloor {
  readonly #words: Int32Array;
  readonly #stamps: BigInt64Array;
  readonly #buffer: SharedArrayBuffer;
  readonly #reader: ReaderChild;

  private constructor(buffer: SharedArrayBuffer, reader: ReaderChild) {
    this.#buffer = buffer;
    this.#words = new Int32Array(buffer);
    this.#stamps = new BigInt64Array(buffer);
    this.#reader = reader;
  }

  /** `readerCpu`: where the reader child pins itself (the caller pins the writer). */
  static async start(workDir: string, readerCpu?: number): Promise<SabSpinFloor> {
    const path = join(workDir, "sab-floor.bin");
    const fd = openSync(path, "w+");
    ftruncateSync(fd, SAB_FLOOR_BYTES);
    const buffer = native.mapShared(fd, SAB_FLOOR_BYTES, true, path);
    closeSync(fd); // the mapping keeps the file
    const reader = new ReaderChild(CHILD, [path], readerCpu);
    await reader.ready();
    return new SabSpinFloor(buffer, reader);
  }

  run(count: number, gapMicros: number): Promise<ReaderRun> {
    return this.#reader.run(count, () => {
      stampedWrites(count, gapMicros, (seq, stamp) => {
        Atomics.store(this.#stamps, STAMP_SLOT, stamp);
        Atomics.store(this.#words, SEQ_WORD, seq);
      });
    });
  }

  async stop(): Promise<void> {
    await this.#reader.stop();
    native.release(this.#buffer);
  }
}
