/**
 * Foreign, truncated and corrupt files: opening them fails with ShmError
 * FOREIGN or CORRUPT (never a crash, never another error type), and a
 * missing file is NOT_FOUND.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OwnedServiceFile, ServiceFile, ShmError } from "../../src/shm/index.js";
import { Header, Index, Record } from "../../src/shm/layout.js";
import { makeTempDir, shmErrorCode } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let count = 0;

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
});

afterEach(() => cleanup());

function fresh(): string {
  return join(dir, `file-${count++}.commy`);
}

/** A healthy service file with a few variables, closed; returns its bytes. */
function template(): { path: string; bytes: Buffer } {
  const path = fresh();
  const owner = OwnedServiceFile.create(path, { serviceId: "tpl", ringCapacity: 16 });
  owner.allocate("a", Buffer.from("alpha"));
  owner.allocate("b", Buffer.alloc(300, 2));
  owner.write("a", Buffer.from("alpha2"));
  owner.close();
  return { path, bytes: readFileSync(path) };
}

function withU32(bytes: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt32LE(value >>> 0, offset);
  return copy;
}

/** Both ways of opening `path` fail with one of `codes`. */
function expectRefused(path: string, codes: string[]): void {
  expect(codes).toContain(shmErrorCode(() => ServiceFile.open(path).close()));
  expect(codes).toContain(shmErrorCode(() => ServiceFile.open(path, { readOnly: true }).close()));
  expect(codes).toContain(shmErrorCode(() => OwnedServiceFile.openOwned(path).close()));
}

describe("files that are not service files", () => {
  it("a missing file is NOT_FOUND", () => {
    expectRefused(join(dir, "missing.commy"), ["NOT_FOUND"]);
  });

  it("an empty file is FOREIGN", () => {
    const path = fresh();
    writeFileSync(path, "");
    expectRefused(path, ["FOREIGN"]);
  });

  it("files of random bytes, short and long, are FOREIGN", () => {
    for (const size of [1, 7, 100, 4095, 4096, 65_536, 300_000]) {
      const path = fresh();
      writeFileSync(path, randomBytes(size));
      expectRefused(path, ["FOREIGN"]);
    }
  });

  it("the right magic with another format version is FOREIGN", () => {
    const { bytes } = template();
    for (const version of [0, 2, 0xffffffff]) {
      const path = fresh();
      writeFileSync(path, withU32(bytes, Header.FORMAT_VERSION, version));
      expectRefused(path, ["FOREIGN"]);
    }
  });

  it("just the magic, too short for a header, is refused", () => {
    const path = fresh();
    writeFileSync(path, "COMMYSVC");
    expectRefused(path, ["FOREIGN", "CORRUPT"]);
  });
});

describe("service files that are broken", () => {
  it("a truncated file (the header says it is bigger) is CORRUPT", () => {
    const { path, bytes } = template();
    for (const size of [bytes.length - 4096, 8192, 4096]) {
      writeFileSync(path, bytes);
      truncateSync(path, size);
      expectRefused(path, ["CORRUPT"]);
    }
  });

  it("bad ring or heap bounds in the header are CORRUPT", () => {
    const { bytes } = template();
    const size = bytes.readUInt32LE(Header.SIZE);
    const heap = bytes.readUInt32LE(Header.HEAP_OFFSET);
    const variants: [string, number, number][] = [
      ["ring capacity 0", Header.RING_CAPACITY, 0],
      ["ring capacity not a power of two", Header.RING_CAPACITY, 17],
      ["ring capacity past the heap", Header.RING_CAPACITY, 1 << 20],
      ["ring capacity 2^31", Header.RING_CAPACITY, 2 ** 31],
      ["ring inside the header", Header.RING_OFFSET, 64],
      ["ring past the heap", Header.RING_OFFSET, heap],
      ["heap past the end", Header.HEAP_OFFSET, size + 4096],
      ["heap inside the ring", Header.HEAP_OFFSET, 4096],
      ["header size", Header.HEADER_SIZE, 512],
      ["maximum below the size", Header.MAX_SIZE, size - 4096],
      ["maximum past 4 GiB − 4 KiB", Header.MAX_SIZE, 0xffffffff],
      ["maximum not a multiple of 4", Header.MAX_SIZE, 1024 * 1024 * 1024 + 1],
      ["size past the file", Header.SIZE, size * 2],
    ];
    for (const [label, offset, value] of variants) {
      const path = fresh();
      writeFileSync(path, withU32(bytes, offset, value));
      for (const open of [
        () => ServiceFile.open(path).close(),
        () => OwnedServiceFile.openOwned(path).close(),
      ]) {
        expect(shmErrorCode(open), label).toBe("CORRUPT");
      }
    }
  });

  it("a file whose ready flag is unset (its creator died initialising it) is CORRUPT", () => {
    const { bytes } = template();
    const path = fresh();
    writeFileSync(path, withU32(bytes, Header.READY, 0));
    expectRefused(path, ["CORRUPT"]);
  });

  it("a broken name index makes openOwned CORRUPT; a local mapping just finds nothing", () => {
    const { bytes } = template();
    const size = bytes.readUInt32LE(Header.SIZE);
    const index = bytes.readUInt32LE(Header.INDEX_OFFSET);
    const variants: [string, Buffer][] = [
      ["index past the end", withU32(bytes, Header.INDEX_OFFSET, size)],
      ["misaligned index", withU32(bytes, Header.INDEX_OFFSET, index + 2)],
      ["index capacity not a power of two", withU32(bytes, index + Index.CAPACITY, 1000)],
      ["index capacity past the end", withU32(bytes, index + Index.CAPACITY, 1 << 24)],
      ["index in the header", withU32(bytes, Header.INDEX_OFFSET, 0)],
    ];
    for (const [label, content] of variants) {
      const path = fresh();
      writeFileSync(path, content);
      expect(
        shmErrorCode(() => OwnedServiceFile.openOwned(path).close()),
        label,
      ).toBe("CORRUPT");
      const local = ServiceFile.open(path);
      try {
        for (const name of ["a", "b", "c"]) {
          expect(["ok", "NOT_FOUND"]).toContain(
            shmErrorCode(() => local.read(name)).replace("no error", "ok"),
          );
        }
        local.list();
      } finally {
        local.close();
      }
    }
  });

  it("a broken record is dropped by openOwned, the rest survives", () => {
    const { path, bytes } = template();
    const owner = OwnedServiceFile.openOwned(path);
    const record = owner.handle("b").record;
    owner.close();
    const broken = Buffer.from(bytes);
    broken.write("x y", record + Record.NAME, "latin1"); // an invalid name, hash mismatch
    const brokenPath = fresh();
    writeFileSync(brokenPath, broken);
    const reopened = OwnedServiceFile.openOwned(brokenPath);
    try {
      expect(reopened.repairs).toEqual(["dropped 1 broken variable record(s)"]);
      expect(reopened.names()).toEqual(["a"]);
      expect(reopened.read("a")).toEqual({ data: Buffer.from("alpha2"), version: 2 });
      // The dropped record's space is free again.
      reopened.allocate("b", Buffer.from("again"));
      expect(reopened.read("b").version).toBe(1);
    } finally {
      reopened.close();
    }
  });

  it("random damage to a service file never crashes and never throws anything but ShmError", () => {
    const { bytes } = template();
    const size = bytes.length;
    const heap = bytes.readUInt32LE(Header.HEAP_OFFSET);
    const damage = fc.array(
      fc.oneof(
        fc.record({
          offset: fc.oneof(
            fc.integer({ min: 0, max: 255 }), // header fields
            fc.integer({ min: 4096, max: size - 1 }), // ring and heap
            fc.integer({ min: heap, max: heap + 16 * 1024 }), // index, records, values
          ),
          value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constant(0xff), fc.constant(0)),
          word: fc.constant(false),
        }),
        // Whole words with plausible values: offsets inside the file, sizes, small numbers.
        fc.record({
          offset: fc.integer({ min: 0, max: heap + 16 * 1024 }).map((n) => n & ~3),
          value: fc.oneof(
            fc.integer({ min: 0, max: size + 8192 }).map((n) => n & ~15),
            fc.integer({ min: 0, max: 64 }),
            fc.nat(),
          ),
          word: fc.constant(true),
        }),
      ),
      { minLength: 1, maxLength: 12 },
    );
    fc.assert(
      fc.property(damage, fc.boolean(), (hits, owned) => {
        const content = Buffer.from(bytes);
        for (const { offset, value, word } of hits) {
          if (word) content.writeUInt32LE(value >>> 0, offset);
          else content[offset] = value;
        }
        const path = fresh();
        writeFileSync(path, content);
        const attempt = (fn: () => unknown): void => {
          try {
            fn();
          } catch (error) {
            if (!(error instanceof ShmError)) throw error;
          }
        };
        let file: ServiceFile | undefined;
        attempt(() => {
          file = owned ? OwnedServiceFile.openOwned(path) : ServiceFile.open(path);
        });
        if (file === undefined) return;
        const opened = file;
        try {
          attempt(() => opened.list());
          attempt(() => opened.pollChanges());
          for (const name of ["a", "b"]) {
            attempt(() => opened.read(name));
            attempt(() => opened.info(name));
            attempt(() => opened.write(name, Buffer.from("new value")));
            attempt(() => opened.write(name, Buffer.alloc(2000, 1)));
          }
          if (opened instanceof OwnedServiceFile) {
            attempt(() => opened.allocate("c", Buffer.alloc(50, 3)));
            attempt(() => opened.deallocate("a"));
          }
          attempt(() => opened.pollChanges());
        } finally {
          opened.close();
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 300) },
    );
  });
});
