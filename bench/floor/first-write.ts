/**
 * Floor for growing a file: the first write of fresh pages of a plain
 * MAP_SHARED file, with one memcpy per chunk and no Commy code. On a VM
 * the first touch of memory can stall for tens of milliseconds while the
 * host backs the page; this shows how much of a slow allocation is that.
 */
import { closeSync, ftruncateSync, openSync, rmSync } from "node:fs";
import { native } from "../../src/shm/native.js";
import { nowNs } from "../lib/timing.js";

export class FirstWriteFloor {
  readonly #buffer: SharedArrayBuffer;
  readonly #u8: Uint8Array;
  readonly #zeros: Uint8Array;
  #next = 0;

  /** A sparse file of `bytes` at `path`, mapped; chunks are at most `maxChunk` bytes. */
  constructor(
    private readonly path: string,
    private readonly bytes: number,
    maxChunk: number,
  ) {
    const fd = openSync(path, "w+");
    try {
      ftruncateSync(fd, bytes);
      this.#buffer = native.mapShared(fd, bytes, true, path);
    } finally {
      closeSync(fd); // the mapping keeps the file
    }
    this.#u8 = new Uint8Array(this.#buffer);
    // Not shared: copying from a plain buffer is a memcpy.
    this.#zeros = new Uint8Array(maxChunk);
  }

  /** Writes the next `bytes` of the file; ns taken, or undefined once the file is full. */
  write(bytes: number): number | undefined {
    if (this.#next + bytes > this.bytes) return undefined;
    const start = nowNs();
    this.#u8.set(this.#zeros.subarray(0, bytes), this.#next);
    const ns = Number(nowNs() - start);
    this.#next += bytes;
    return ns;
  }

  close(): void {
    native.release(this.#buffer);
    rmSync(this.path, { force: true });
  }
}
