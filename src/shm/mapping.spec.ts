import { describe, expect, it } from "vitest";
import { checkHeader } from "./mapping.js";
import { native } from "./native.js";
import { FORMAT_VERSION, HEADER_SIZE, Header, MAGIC } from "./layout.js";
import { ShmError } from "./shm-error.js";

const SIZE = 64 * 1024;

function header(fields: Partial<Record<keyof typeof Header, number>> = {}): Uint8Array {
  const head = new Uint8Array(HEADER_SIZE);
  const view = new DataView(head.buffer);
  head.set(MAGIC, 0);
  const values = {
    FORMAT_VERSION,
    HEADER_SIZE,
    READY: 1,
    SIZE,
    MAX_SIZE: 1024 * 1024,
    RING_OFFSET: HEADER_SIZE,
    RING_CAPACITY: 16,
    HEAP_OFFSET: 2 * HEADER_SIZE,
    ...fields,
  };
  for (const [key, value] of Object.entries(values)) {
    view.setUint32(Header[key as keyof typeof Header], value, true);
  }
  return head;
}

function failure(head: Uint8Array, fileSize = SIZE): [string, string] {
  try {
    checkHeader("/x", head, fileSize);
  } catch (error) {
    expect(error).toBeInstanceOf(ShmError);
    return [(error as ShmError).code, (error as ShmError).message];
  }
  return ["no error", ""];
}

describe("checkHeader", () => {
  it("returns the facts of a sound header", () => {
    expect(checkHeader("/x", header(), SIZE)).toEqual({
      size: SIZE,
      maxSize: 1024 * 1024,
      ringOffset: HEADER_SIZE,
      ringCapacity: 16,
      heapOffset: 2 * HEADER_SIZE,
      ready: true,
    });
    expect(checkHeader("/x", header({ READY: 0 }), SIZE).ready).toBe(false);
  });

  it("says FOREIGN for another magic, another version or a file shorter than a header", () => {
    const other = header();
    other[0] = 0x58;
    expect(failure(other)[0]).toBe("FOREIGN");
    expect(failure(header({ FORMAT_VERSION: 2 }))).toEqual([
      "FOREIGN",
      "/x has service-file format 2; this build reads format 1",
    ]);
    expect(failure(header(), HEADER_SIZE - 1)[0]).toBe("FOREIGN");
  });

  it("says CORRUPT, and why, for every broken bound", () => {
    const cases: [Partial<Record<keyof typeof Header, number>>, number, string][] = [
      [{ HEADER_SIZE: 128 }, SIZE, "unexpected header size"],
      [{ MAX_SIZE: SIZE - 4 }, SIZE, "bad maximum size"],
      [{ MAX_SIZE: 2 ** 32 - 1 }, SIZE, "bad maximum size"],
      [{ MAX_SIZE: 1024 * 1024 + 2 }, SIZE, "bad maximum size"],
      [{}, SIZE - 1, `header says ${SIZE} bytes, the file has ${SIZE - 1}`],
      [{ RING_CAPACITY: 0 }, SIZE, "bad change ring or heap bounds"],
      [{ RING_CAPACITY: 24 }, SIZE, "bad change ring or heap bounds"],
      [{ RING_CAPACITY: 512 }, SIZE, "bad change ring or heap bounds"],
      [{ RING_OFFSET: 0 }, SIZE, "bad change ring or heap bounds"],
      [{ HEAP_OFFSET: SIZE + 4096, MAX_SIZE: 1024 * 1024 }, SIZE, "bad change ring or heap bounds"],
    ];
    for (const [fields, fileSize, reason] of cases) {
      expect(failure(header(fields), fileSize), JSON.stringify(fields)).toEqual([
        "CORRUPT",
        `/x is corrupt: ${reason}`,
      ]);
    }
  });
});

describe("native.prefault", () => {
  it("refuses a range outside the buffer and accepts an empty one", () => {
    const buffer = new SharedArrayBuffer(8192);
    expect(() => native.prefault(buffer, 4096, 8192)).toThrow(RangeError);
    expect(() => native.prefault(buffer, -1, 1)).toThrow(RangeError);
    expect(() => native.prefault(buffer, 0, 0)).not.toThrow();
  });
});
