/**
 * Every documented failure of the service-file layer surfaces as a ShmError
 * with the right code, and a failed operation changes nothing.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_VALUE_SIZE, OwnedServiceFile, ServiceFile, ShmError } from "../../src/shm/index.js";
import { makeTempDir, shmErrorCode } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let path: string;
const open: ServiceFile[] = [];

function track<T extends ServiceFile>(file: T): T {
  open.push(file);
  return file;
}

function create(options: { maxSize?: number; ringCapacity?: number; initialSize?: number } = {}) {
  return track(
    OwnedServiceFile.create(path, { serviceId: "errors", ringCapacity: 64, ...options }),
  );
}

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
  path = join(dir, "svc.commy");
});

afterEach(() => {
  for (const file of open.splice(0)) file.close();
  cleanup();
});

describe("names and sizes", () => {
  const invalidNames = [
    ["empty", ""],
    ["129 characters", "a".repeat(129)],
    ["a leading dot", ".hidden"],
    ["a slash", "a/b"],
    ["a space", "a b"],
    ["non-ASCII", "café"],
    ["a NUL", "a\u0000b"],
  ];

  for (const [label, name] of invalidNames) {
    it(`allocate refuses a name with ${label} (INVALID)`, () => {
      const owner = create();
      expect(shmErrorCode(() => owner.allocate(name as string, Buffer.from("x")))).toBe("INVALID");
      expect(owner.names()).toEqual([]);
      expect(owner.list()).toEqual([]);
    });
  }

  it("accepts the edge of the naming rule", () => {
    const owner = create();
    for (const name of ["a", "a".repeat(128), "A.b-c_d", "_x", "-y", "0"]) {
      expect(owner.allocate(name, Buffer.from(name)).version).toBe(1);
    }
    const local = track(ServiceFile.open(path));
    expect(local.read("a".repeat(128)).data.toString()).toBe("a".repeat(128));
  });

  it("lookups of an invalid name find nothing (NOT_FOUND), never match a record", () => {
    const owner = create();
    owner.allocate("ok", Buffer.from("x"));
    const local = track(ServiceFile.open(path));
    for (const file of [owner, local]) {
      expect(file.find("a/b")).toBeUndefined();
      expect(shmErrorCode(() => file.read(".ok"))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.write("o k", Buffer.from("y")))).toBe("NOT_FOUND");
    }
  });

  it("values and capacities above MAX_VALUE_SIZE are TOO_LARGE; exactly MAX_VALUE_SIZE fits", () => {
    const owner = create();
    const tooBig = Buffer.alloc(MAX_VALUE_SIZE + 1);
    expect(shmErrorCode(() => owner.allocate("v", tooBig))).toBe("TOO_LARGE");
    expect(
      shmErrorCode(() => owner.allocate("v", Buffer.of(1), { capacity: MAX_VALUE_SIZE + 1 })),
    ).toBe("TOO_LARGE");
    expect(owner.names()).toEqual([]);
    owner.allocate("v", Buffer.of(1));
    const local = track(ServiceFile.open(path));
    for (const file of [owner, local]) {
      expect(shmErrorCode(() => file.write("v", tooBig))).toBe("TOO_LARGE");
    }
    expect(owner.read("v")).toEqual({ data: Buffer.of(1), version: 1 });
    const max = Buffer.alloc(MAX_VALUE_SIZE, 0x5a);
    expect(owner.write("v", max)).toBe(2);
    const read = local.read("v");
    expect(read.version).toBe(2);
    expect(read.data.equals(max)).toBe(true);
    expect(owner.allocate("w", max).capacity).toBe(MAX_VALUE_SIZE);
  });

  it("readInto a buffer that is too small is TOO_LARGE and reads nothing", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("0123456789"));
    const local = track(ServiceFile.open(path));
    const handle = local.handle("v");
    expect(shmErrorCode(() => local.readInto(handle, new Uint8Array(9)))).toBe("TOO_LARGE");
    const target = new Uint8Array(10);
    expect(local.readInto(handle, target)).toBe(10);
    expect(Buffer.from(target).toString()).toBe("0123456789");
    expect(handle.version).toBe(1);
  });
});

describe("existence", () => {
  it("a second allocate of a name is EXISTS and leaves the first alone", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("first"));
    expect(shmErrorCode(() => owner.allocate("v", Buffer.from("second")))).toBe("EXISTS");
    expect(owner.read("v")).toEqual({ data: Buffer.from("first"), version: 1 });
  });

  it("creating a file where one exists is EXISTS and does not touch it", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("kept"));
    expect(shmErrorCode(() => OwnedServiceFile.create(path, { serviceId: "other" }))).toBe(
      "EXISTS",
    );
    expect(track(ServiceFile.open(path)).read("v").data.toString()).toBe("kept");
  });

  it("deallocate, read, write, version and info of a missing variable are NOT_FOUND", () => {
    const owner = create();
    const local = track(ServiceFile.open(path));
    expect(shmErrorCode(() => owner.deallocate("nope"))).toBe("NOT_FOUND");
    for (const file of [owner, local]) {
      expect(shmErrorCode(() => file.read("nope"))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.write("nope", Buffer.of(1)))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.version("nope"))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.info("nope"))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.handle("nope"))).toBe("NOT_FOUND");
      expect(file.find("nope")).toBeUndefined();
    }
  });

  it("a handle of a deleted variable is NOT_FOUND, also once the name is created again", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("old"));
    owner.write("v", Buffer.from("old2"));
    const local = track(ServiceFile.open(path));
    const stale = local.handle("v");
    const staleOwner = owner.handle("v");
    owner.deallocate("v");
    owner.allocate("v", Buffer.from("new"));
    for (const [file, handle] of [
      [local, stale],
      [owner, staleOwner],
    ] as const) {
      expect(shmErrorCode(() => file.read(handle))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.readInto(handle, new Uint8Array(16)))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.version(handle))).toBe("NOT_FOUND");
      expect(shmErrorCode(() => file.write(handle, Buffer.from("x")))).toBe("NOT_FOUND");
    }
    // The new variable is a new life: version 1, found again by name.
    expect(local.read("v")).toEqual({ data: Buffer.from("new"), version: 1 });
  });

  it("a write through a stale handle never touches the memory its record was reused for", () => {
    const owner = create();
    const victims = Array.from({ length: 8 }, (_, i) => `victim${i}`);
    for (const name of victims) owner.allocate(name, Buffer.from("v"));
    const local = track(ServiceFile.open(path));
    const stale = victims.map((name) => local.handle(name));
    for (const name of victims) owner.deallocate(name);
    // Reuse the freed records' space, partly for values full of non-zero bytes.
    const fill = Buffer.alloc(100, 0xab);
    const fillers = Array.from({ length: 24 }, (_, i) => `filler${i}`);
    for (const name of fillers) owner.allocate(name, fill);
    for (const handle of stale) {
      expect(shmErrorCode(() => local.write(handle, Buffer.from("zap")))).toBe("NOT_FOUND");
    }
    for (const name of fillers) {
      const { data, version } = owner.read(name);
      expect(version).toBe(1);
      expect(data.equals(fill), `${name} holds ${data.toString("hex")}`).toBe(true);
    }
  });
});

describe("compare-and-set", () => {
  it("a wrong expectedVersion is VERSION_CONFLICT and writes nothing, announces nothing", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("one"));
    owner.write("v", Buffer.from("two"));
    const local = track(ServiceFile.open(path));
    local.pollChanges();
    for (const file of [owner, local]) {
      for (const expectedVersion of [0, 1, 3, 1000]) {
        expect(shmErrorCode(() => file.write("v", Buffer.from("bad"), { expectedVersion }))).toBe(
          "VERSION_CONFLICT",
        );
      }
      // Also for a value that would need relocation.
      expect(shmErrorCode(() => file.write("v", Buffer.alloc(5000), { expectedVersion: 1 }))).toBe(
        "VERSION_CONFLICT",
      );
    }
    expect(local.read("v")).toEqual({ data: Buffer.from("two"), version: 2 });
    expect(owner.info("v").capacity).toBe(16);
    expect(local.pollChanges()).toEqual([]);
    expect(local.write("v", Buffer.from("three"), { expectedVersion: 2 })).toBe(3);
    expect(owner.write("v", Buffer.alloc(5000, 4), { expectedVersion: 3 })).toBe(4);
    expect(local.read("v")).toEqual({ data: Buffer.alloc(5000, 4), version: 4 });
  });
});

describe("capacity", () => {
  it("a local process cannot write past the capacity (CAPACITY); the owner relocates", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("small"), { capacity: 64 });
    const local = track(ServiceFile.open(path));
    local.pollChanges();
    expect(local.write("v", Buffer.alloc(64, 1))).toBe(2);
    expect(shmErrorCode(() => local.write("v", Buffer.alloc(65, 2)))).toBe("CAPACITY");
    expect(local.read("v")).toEqual({ data: Buffer.alloc(64, 1), version: 2 });
    expect(owner.write("v", Buffer.alloc(65, 3))).toBe(3);
    expect(owner.info("v")).toEqual({ name: "v", version: 3, size: 65, capacity: 128 });
    // The local process now writes that size in place, through the same handle.
    expect(local.write("v", Buffer.alloc(128, 4))).toBe(4);
    expect(owner.read("v")).toEqual({ data: Buffer.alloc(128, 4), version: 4 });
    expect(local.pollChanges().map((c) => c.version)).toEqual([4]);
  });
});

describe("deleted, closed, read-only", () => {
  it("after markDeleted every write is DELETED, for the owner and local processes", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("x"));
    const local = track(ServiceFile.open(path));
    expect(local.deleted).toBe(false);
    owner.markDeleted();
    expect(local.deleted).toBe(true);
    expect(owner.deleted).toBe(true);
    expect(shmErrorCode(() => owner.write("v", Buffer.from("y")))).toBe("DELETED");
    expect(shmErrorCode(() => local.write("v", Buffer.from("y")))).toBe("DELETED");
    expect(shmErrorCode(() => owner.allocate("w", Buffer.from("y")))).toBe("DELETED");
    expect(shmErrorCode(() => owner.deallocate("v"))).toBe("DELETED");
    expect(local.version("v")).toBe(1);
    // A process that maps the file only now learns it at once too.
    expect(track(ServiceFile.open(path)).deleted).toBe(true);
  });

  it("every operation after close is CLOSED", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("x"));
    const local = ServiceFile.open(path);
    const handle = local.handle("v");
    const ownerHandle = owner.handle("v");
    local.close();
    local.close(); // closing twice is harmless
    expect(local.closed).toBe(true);
    expect(local.deleted).toBe(true);
    const ops: [string, () => unknown][] = [
      ["find", () => local.find("v")],
      ["handle", () => local.handle("v")],
      ["read", () => local.read("v")],
      ["read(handle)", () => local.read(handle)],
      ["readInto", () => local.readInto(handle, new Uint8Array(8))],
      ["version", () => local.version(handle)],
      ["write", () => local.write(handle, Buffer.from("y"))],
      ["list", () => local.list()],
      ["info", () => local.info(handle)],
      ["pollChanges", () => local.pollChanges()],
      ["waitForChangeSync", () => local.waitForChangeSync(0)],
      ["watch", () => local.watch(() => undefined)],
      ["sync", () => local.sync()],
    ];
    for (const [label, op] of ops) expect(shmErrorCode(op), label).toBe("CLOSED");
    open.splice(open.indexOf(owner), 1);
    owner.close();
    for (const [label, op] of [
      ["allocate", () => owner.allocate("w", Buffer.of(1))],
      ["deallocate", () => owner.deallocate("v")],
      ["write", () => owner.write(ownerHandle, Buffer.of(1))],
      ["markDeleted", () => owner.markDeleted()],
    ] as [string, () => unknown][]) {
      expect(shmErrorCode(op), label).toBe("CLOSED");
    }
    // The file itself is intact.
    const reopened = track(ServiceFile.open(path));
    expect(reopened.read("v")).toEqual({ data: Buffer.from("x"), version: 1 });
  });

  it("a read-only mapping reads but every write is READ_ONLY", () => {
    const owner = create();
    owner.allocate("v", Buffer.from("x"));
    const readOnly = track(ServiceFile.open(path, { readOnly: true }));
    expect(readOnly.read("v")).toEqual({ data: Buffer.from("x"), version: 1 });
    expect(shmErrorCode(() => readOnly.write("v", Buffer.from("y")))).toBe("READ_ONLY");
    expect(readOnly.read("v").version).toBe(1);
    owner.write("v", Buffer.from("z"));
    expect(readOnly.read("v")).toEqual({ data: Buffer.from("z"), version: 2 });
    readOnly.pollChanges();
    owner.write("v", Buffer.from("w"));
    expect(readOnly.waitForChangeSync(1000)).toBe(true);
    expect(readOnly.pollChanges()).toEqual([{ name: "v", version: 3, kind: "write" }]);
    expect(readOnly.waitForChangeSync(0)).toBe(false);
  });
});

describe("a full file", () => {
  const maxSize = 128 * 1024;

  function fill(owner: OwnedServiceFile, prefix: string, bytes: number): string[] {
    const names: string[] = [];
    for (let i = 0; ; i++) {
      const name = `${prefix}${i}`;
      try {
        owner.allocate(name, Buffer.alloc(bytes, i & 0xff));
      } catch (error) {
        expect(error).toBeInstanceOf(ShmError);
        expect((error as ShmError).code).toBe("FULL");
        return names;
      }
      names.push(name);
    }
  }

  it("allocate beyond maxSize is FULL; the file keeps working and reuses freed space", () => {
    const owner = create({ maxSize, initialSize: 32 * 1024, ringCapacity: 16 });
    const names = fill(owner, "v", 1000);
    expect(names.length).toBeGreaterThan(10);
    expect(owner.size).toBe(maxSize);
    const local = track(ServiceFile.open(path));
    names.forEach((name, i) => expect(local.read(name).data).toEqual(Buffer.alloc(1000, i & 0xff)));
    // Relocating a value past what is left is FULL too, and changes nothing.
    expect(shmErrorCode(() => owner.write("v0", Buffer.alloc(64 * 1024)))).toBe("FULL");
    expect(local.read("v0")).toEqual({ data: Buffer.alloc(1000, 0), version: 1 });
    // Freed space is reused.
    owner.deallocate("v1");
    owner.deallocate("v2");
    expect(owner.allocate("again", Buffer.alloc(1000, 7)).version).toBe(1);
    expect(local.read("again").data).toEqual(Buffer.alloc(1000, 7));
    expect(owner.size).toBe(maxSize);
  });

  it("a failed allocate leaks no space", () => {
    const owner = create({ maxSize, initialSize: 32 * 1024, ringCapacity: 16 });
    const first = fill(owner, "s", 16);
    for (const name of first) owner.deallocate(name);
    // Each of these finds room for a record but not for its value.
    for (let i = 0; i < 40; i++) {
      expect(shmErrorCode(() => owner.allocate(`big${i}`, Buffer.alloc(100_000)))).toBe("FULL");
    }
    const second = fill(owner, "t", 16);
    expect(second.length).toBe(first.length);
  });
});

describe("creating a file", () => {
  it("refuses bad options with INVALID and leaves no file behind", () => {
    const bad = [
      { serviceId: "x", ringCapacity: 8 },
      { serviceId: "x", ringCapacity: 100 },
      { serviceId: "x", maxSize: 64 * 1024, initialSize: 256 * 1024 },
      { serviceId: "x", maxSize: 2 ** 33 },
      { serviceId: "x", maxSize: 1024 * 1024 + 1 },
      { serviceId: "x".repeat(65) },
      { serviceId: "ünïcode" },
    ];
    for (const options of bad) {
      expect(
        shmErrorCode(() => OwnedServiceFile.create(path, options)),
        JSON.stringify(options),
      ).toBe("INVALID");
      expect(shmErrorCode(() => ServiceFile.open(path))).toBe("NOT_FOUND");
    }
  });

  it("writes the service id into the header for any process to read", () => {
    const id = "0b5c1f6e-8d1a-4f0e-9a63-3f2b7c9d1e42";
    track(OwnedServiceFile.create(path, { serviceId: id }));
    expect(track(ServiceFile.open(path)).serviceId).toBe(id);
    expect(track(ServiceFile.open(path, { readOnly: true })).serviceId).toBe(id);
  });
});
