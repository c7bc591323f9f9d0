/**
 * Internal: the typed face of the C++ addon (native/addon.cc). It maps
 * files and parks threads on shared words; it knows nothing of the format.
 */
import { createRequire } from "node:module";

/** Outcome of a blocking wait on a shared word (numbers: no string per call). */
export const WaitCode = { OK: 0, NOT_EQUAL: 1, TIMED_OUT: 2 } as const;
export type WaitCode = (typeof WaitCode)[keyof typeof WaitCode];

/** A thread sleeping on a shared word; tells the event loop when it moves. */
export interface NativeWatcher {
  /** Stops the thread; no callback runs after this returns. */
  close(): void;
  /** Keeps the process alive while the watcher is open (the default). */
  ref(): void;
  /** Lets the process exit although the watcher is open. */
  unref(): void;
}

/** A file made by `makeFiles`: its descriptor and its mapping. */
export interface NewMappedFile {
  fd: number;
  buffer: SharedArrayBuffer;
}

interface CommyShmAddon {
  mapShared(fd: number, length: number, writable: boolean, path: string): SharedArrayBuffer;
  release(buffer: SharedArrayBuffer): void;
  /**
   * On libuv's threadpool, one job for all: for each path a new file (EEXIST
   * if there is one) whose first `zeroBytes` are written, sized to `size`,
   * mapped shared and writable over `length` bytes. Calls back with one
   * result per path: the file, or the error (the file is then gone again).
   */
  makeFiles(
    paths: readonly string[],
    zeroBytes: number,
    size: number,
    mode: number,
    length: number,
    callback: (results: (NewMappedFile | Error)[]) => void,
  ): void;
  /**
   * On libuv's threadpool, one job for all: releases each mapping (as
   * `release()`), closes its descriptor and unlinks its path, best effort;
   * then calls back.
   */
  removeFiles(
    buffers: readonly SharedArrayBuffer[],
    fds: readonly number[],
    paths: readonly string[],
    callback: () => void,
  ): void;
  sync(buffer: SharedArrayBuffer, byteOffset: number, length: number, path: string): void;
  /**
   * Queues the range to be faulted in, writable, on a background thread;
   * returns at once. Only for a writable mapping of bytes inside the file
   * (each page gets an atomic add of 0); `release()` cancels what is queued.
   */
  prefault(buffer: SharedArrayBuffer, byteOffset: number, length: number): void;
  wake(buffer: SharedArrayBuffer, byteOffset: number, count?: number): number;
  waitSync(
    buffer: SharedArrayBuffer,
    byteOffset: number,
    expected: number,
    timeoutMs: number | undefined,
    spinMicros: number,
    waitersOffset: number | undefined,
  ): WaitCode;
  watch(
    buffer: SharedArrayBuffer,
    byteOffset: number,
    waitersOffset: number | undefined,
    onChange: (value: number) => void,
    spinMicros: number,
  ): NativeWatcher;
}

const require = createRequire(import.meta.url);

function loadAddon(): CommyShmAddon {
  // Source (src/shm) and compiled (dist/src/shm) layouts sit at different
  // depths below the package root, where node-gyp leaves build/.
  const candidates = [
    "../../build/Release/commy_shm.node",
    "../../../build/Release/commy_shm.node",
  ];
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      return require(candidate) as CommyShmAddon;
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(
    "the native module commy_shm is not built: run `npm ci` (or `npm run build`) in the package",
    { cause: lastError },
  );
}

/** Internal: the loaded addon. */
export const native: CommyShmAddon = loadAddon();
