/**
 * Internal: opening a service file and mapping it, with every check that
 * keeps a foreign, truncated or corrupt file from ever being touched
 * beyond its end (which would be a SIGBUS, not an exception).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { native } from "./native.js";
import { FORMAT_VERSION, HEADER_SIZE, Header, LIMIT_MAX_SIZE, MAGIC, RingEntry } from "./layout.js";
import { ShmError } from "./shm-error.js";

/** A mapped service file: the raw memory and the descriptor behind it. */
export interface Mapping {
  readonly path: string;
  readonly fd: number;
  readonly buffer: SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly writable: boolean;
}

/** The header fields a mapper needs, as read and checked at open. */
export interface HeaderFacts {
  size: number;
  maxSize: number;
  ringOffset: number;
  ringCapacity: number;
  heapOffset: number;
  ready: boolean;
}

function u32At(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
}

/**
 * Checks a header read from disk. Returns the facts or throws FOREIGN /
 * CORRUPT with a message that says what is wrong.
 */
export function checkHeader(path: string, head: Uint8Array, fileSize: number): HeaderFacts {
  if (fileSize < HEADER_SIZE || !MAGIC.every((byte, i) => head[i] === byte)) {
    throw new ShmError("FOREIGN", `${path} is not a Commy service file`);
  }
  const version = u32At(head, Header.FORMAT_VERSION);
  if (version !== FORMAT_VERSION) {
    throw new ShmError(
      "FOREIGN",
      `${path} has service-file format ${version}; this build reads format ${FORMAT_VERSION}`,
    );
  }
  const facts: HeaderFacts = {
    size: u32At(head, Header.SIZE),
    maxSize: u32At(head, Header.MAX_SIZE),
    ringOffset: u32At(head, Header.RING_OFFSET),
    ringCapacity: u32At(head, Header.RING_CAPACITY),
    heapOffset: u32At(head, Header.HEAP_OFFSET),
    ready: u32At(head, Header.READY) === 1,
  };
  const corrupt = (what: string): never => {
    throw new ShmError("CORRUPT", `${path} is corrupt: ${what}`);
  };
  if (u32At(head, Header.HEADER_SIZE) !== HEADER_SIZE) corrupt("unexpected header size");
  // Every word is a u32: a mapping whose length is not a multiple of 4 cannot be viewed.
  if (facts.maxSize > LIMIT_MAX_SIZE || facts.maxSize < facts.size || facts.maxSize % 4 !== 0) {
    corrupt("bad maximum size");
  }
  if (facts.size > fileSize) corrupt(`header says ${facts.size} bytes, the file has ${fileSize}`);
  const ringBytes = facts.ringCapacity * RingEntry.SIZE;
  if (
    facts.ringCapacity === 0 ||
    (facts.ringCapacity & (facts.ringCapacity - 1)) !== 0 ||
    facts.ringOffset < HEADER_SIZE ||
    facts.ringOffset + ringBytes > facts.heapOffset ||
    facts.heapOffset > facts.size
  ) {
    corrupt("bad change ring or heap bounds");
  }
  return facts;
}

/** Opens and maps an existing service file. */
export function mapExisting(
  path: string,
  writable: boolean,
): { mapping: Mapping; facts: HeaderFacts } {
  let fd: number;
  try {
    fd = openSync(path, writable ? "r+" : "r");
  } catch (error) {
    throw translateOpenError(path, error);
  }
  try {
    const head = new Uint8Array(HEADER_SIZE);
    const fileSize = fstatSync(fd).size;
    readSync(fd, head, 0, HEADER_SIZE, 0);
    const facts = checkHeader(path, head, fileSize);
    return { mapping: mapFd(path, fd, facts.maxSize, writable), facts };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Maps `length` bytes of an open descriptor. */
export function mapFd(path: string, fd: number, length: number, writable: boolean): Mapping {
  const buffer = native.mapShared(fd, length, writable, path);
  return {
    path,
    fd,
    buffer,
    u8: new Uint8Array(buffer),
    u32: new Uint32Array(buffer),
    writable,
  };
}

/** Lets go of the file: the memory turns into zeros, the descriptor closes. */
export function unmap(mapping: Mapping): void {
  native.release(mapping.buffer);
  closeSync(mapping.fd);
}

/**
 * `unmap()` and an unlink of each file, on libuv's threadpool in one job;
 * best effort (a file left behind is an orphan to remove at the next start).
 */
export function unmapAndUnlinkInBackground(mappings: readonly Mapping[]): Promise<void> {
  if (mappings.length === 0) return Promise.resolve();
  return new Promise((resolve) =>
    native.removeFiles(
      mappings.map((m) => m.buffer),
      mappings.map((m) => m.fd),
      mappings.map((m) => m.path),
      resolve,
    ),
  );
}

/** How new files are made by `mapNewFilesInBackground`. */
export interface NewFileSpec {
  /** Bytes written (zeros) from the start: the pages needed at once. */
  zeroBytes: number;
  /** The file's size. */
  size: number;
  mode: number;
  /** Bytes mapped (the file may grow up to this without a remap). */
  length: number;
}

/**
 * New files, made and mapped writable on libuv's threadpool in one job:
 * one result per path, the mapping or why it could not be made (EXISTS
 * when a file is there).
 */
export function mapNewFilesInBackground(
  paths: readonly string[],
  spec: NewFileSpec,
): Promise<(Mapping | Error)[]> {
  return new Promise((resolve) =>
    native.makeFiles(paths, spec.zeroBytes, spec.size, spec.mode, spec.length, (results) =>
      resolve(
        results.map((result, i) => {
          const path = paths[i] as string;
          if (result instanceof Error) return translateCreateError(path, result);
          return {
            path,
            fd: result.fd,
            buffer: result.buffer,
            u8: new Uint8Array(result.buffer),
            u32: new Uint32Array(result.buffer),
            writable: true,
          };
        }),
      ),
    ),
  );
}

function translateCreateError(path: string, error: Error): Error {
  return "code" in error && error.code === "EEXIST"
    ? new ShmError("EXISTS", `a file exists at ${path}`)
    : error;
}

function translateOpenError(path: string, error: unknown): Error {
  if (error instanceof Error && "code" in error && error.code === "ENOENT") {
    return new ShmError("NOT_FOUND", `no service file at ${path}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}
