/**
 * Growth of a service file and of its name index: existing mappings and
 * handles keep working, every name stays findable without the owner, and
 * freed space is zeroed and reused.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OwnedServiceFile, ServiceFile, type VariableHandle } from "../../src/shm/index.js";
import { Header, Index } from "../../src/shm/layout.js";
import { makeTempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let path: string;
const open: ServiceFile[] = [];

function track<T extends ServiceFile>(file: T): T {
  open.push(file);
  return file;
}

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
  path = join(dir, "svc.commy");
});

afterEach(() => {
  for (const file of open.splice(0)) file.close();
  cleanup();
});

function create(): OwnedServiceFile {
  return track(
    OwnedServiceFile.create(path, {
      serviceId: "growth",
      ringCapacity: 16,
      initialSize: 32 * 1024,
      maxSize: 256 * 1024 * 1024,
    }),
  );
}

function valueOf(i: number, length = 2000): Buffer {
  const value = Buffer.alloc(length, i & 0xff);
  value.write(`value-${i}`);
  return value;
}

/** The name index as the header describes it: where it is and how many slots it has. */
function indexOf(): { offset: number; capacity: number } {
  const bytes = readFileSync(path);
  const offset = bytes.readUInt32LE(Header.INDEX_OFFSET);
  return { offset, capacity: bytes.readUInt32LE(offset + Index.CAPACITY) };
}

describe("file growth", () => {
  it("the file grows several times and handles taken before keep reading", () => {
    const owner = create();
    const early = track(ServiceFile.open(path));
    const sizes = new Set<number>([owner.size]);
    const handles: [ServiceFile, VariableHandle, number][] = [];
    for (let i = 0; i < 300; i++) {
      owner.allocate(`v${i}`, valueOf(i));
      sizes.add(owner.size);
      handles.push([early, early.handle(`v${i}`), i], [owner, owner.handle(`v${i}`), i]);
    }
    expect(sizes.size).toBeGreaterThanOrEqual(4);
    expect([...sizes]).toEqual([...sizes].sort((a, b) => a - b));
    expect(early.size).toBe(owner.size);
    expect(statSync(path).size).toBe(owner.size);
    const target = new Uint8Array(4096);
    for (const [file, handle, i] of handles) {
      const { data, version } = file.read(handle);
      expect(version).toBe(1);
      expect(data.equals(valueOf(i)), handle.name).toBe(true);
      expect(file.readInto(handle, target)).toBe(2000);
      expect(Buffer.from(target.subarray(0, 2000)).equals(valueOf(i))).toBe(true);
    }
    // Relocating an early variable into the new space: old handles follow it.
    const [, firstHandle] = handles[0] as [ServiceFile, VariableHandle, number];
    expect(owner.write("v0", valueOf(7, 60_000))).toBe(2);
    const moved = early.read(firstHandle);
    expect(moved.version).toBe(2);
    expect(moved.data.equals(valueOf(7, 60_000))).toBe(true);
    // A process mapping the file only now sees the same.
    const late = track(ServiceFile.open(path));
    expect(late.list()).toHaveLength(300);
    expect(late.read("v299")).toEqual({ data: valueOf(299), version: 1 });
  });

  it("a process that mapped the small file writes into space added later", () => {
    const owner = create();
    const early = track(ServiceFile.open(path));
    for (let i = 0; i < 100; i++) owner.allocate(`v${i}`, valueOf(i));
    const last = early.handle("v99");
    expect(early.write(last, valueOf(1234))).toBe(2);
    expect(owner.read("v99")).toEqual({ data: valueOf(1234), version: 2 });
  });
});

describe("the name index", () => {
  it("rehashes past 512 variables and every name is still found without the owner", () => {
    const owner = create();
    const before = track(ServiceFile.open(path));
    const firstIndex = indexOf();
    expect(firstIndex.capacity).toBe(1024);
    const count = 2100;
    for (let i = 0; i < count; i++) owner.allocate(`name-${i}`, valueOf(i, 20));
    const grown = indexOf();
    expect(grown.capacity).toBeGreaterThanOrEqual(8192);
    expect(grown.offset).not.toBe(firstIndex.offset);
    const after = track(ServiceFile.open(path));
    for (const file of [before, after]) {
      for (let i = 0; i < count; i++) {
        const handle = file.find(`name-${i}`);
        expect(handle, `name-${i}`).toBeDefined();
        expect(file.read(handle as VariableHandle).data).toEqual(valueOf(i, 20));
      }
      expect(file.find(`name-${count}`)).toBeUndefined();
      expect(file.list()).toHaveLength(count);
    }
  });

  it("deletes leave tombstones that never hide a name; rebuilt indexes drop them", () => {
    const owner = create();
    const local = track(ServiceFile.open(path));
    const live = new Set<string>();
    // Churn: many more creates and deletes than the index has slots.
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 400; i++) {
        const name = `r${round}-${i}`;
        owner.allocate(name, Buffer.from(name));
        live.add(name);
      }
      for (const name of [...live]) {
        if (name.length % 2 === round % 2) {
          owner.deallocate(name);
          live.delete(name);
        }
      }
    }
    const check = (file: ServiceFile): void => {
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 400; i++) {
          const name = `r${round}-${i}`;
          if (live.has(name)) expect(file.read(name).data.toString()).toBe(name);
          else expect(file.find(name), name).toBeUndefined();
        }
      }
      expect(
        file
          .list()
          .map((v) => v.name)
          .sort(),
      ).toEqual([...live].sort());
    };
    check(local);
    check(owner);
    owner.close();
    open.splice(open.indexOf(owner), 1);
    const reopened = track(OwnedServiceFile.openOwned(path));
    const index = readFileSync(path).subarray(indexOf().offset);
    expect(index.readUInt32LE(Index.TOMBSTONES)).toBe(0);
    expect(index.readUInt32LE(Index.LIVE)).toBe(live.size);
    check(reopened);
    check(local);
    check(track(ServiceFile.open(path)));
  });
});

describe("space reuse", () => {
  it("creating and deleting over and over does not grow the file", () => {
    const owner = create();
    for (let i = 0; i < 50; i++) owner.allocate(`keep${i}`, valueOf(i, 500));
    const churn = (rounds: number): void => {
      for (let i = 0; i < rounds; i++) {
        owner.allocate(`tmp${i}`, valueOf(i, 3000));
        owner.write(`tmp${i}`, valueOf(i, 9000)); // relocation frees the old block
        owner.deallocate(`tmp${i}`);
      }
    };
    churn(10);
    const settled = owner.size;
    churn(2000);
    expect(owner.size).toBe(settled);
    for (let i = 0; i < 50; i++) expect(owner.read(`keep${i}`).data).toEqual(valueOf(i, 500));
  });

  it("deleted and relocated values are zeroed, not left in the file", () => {
    const owner = create();
    owner.allocate("secret", Buffer.from("TOP-SECRET-DELETED-VALUE"));
    owner.allocate("moving", Buffer.from("OLD-PLACE-OF-A-MOVED-VALUE"));
    owner.write("moving", Buffer.alloc(5000, 0x2e));
    owner.write("moving", Buffer.alloc(5000, 0x2d)); // the other slot's old copy is gone too
    owner.deallocate("secret");
    const bytes = readFileSync(path);
    expect(bytes.includes("TOP-SECRET-DELETED-VALUE")).toBe(false);
    expect(bytes.includes("OLD-PLACE-OF-A-MOVED-VALUE")).toBe(false);
    expect(bytes.includes("secret")).toBe(false); // the record's name too
    // A new variable in the reused space starts from zeros: no stale bytes leak into it.
    owner.allocate("next", Buffer.alloc(0), { capacity: 64 });
    const local = track(ServiceFile.open(path));
    expect(local.write("next", Buffer.alloc(3, 1))).toBe(2);
    expect(local.read("next")).toEqual({ data: Buffer.alloc(3, 1), version: 2 });
  });
});
