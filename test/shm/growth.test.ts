/**
 * Growth of a service file and of its name index: existing mappings and
 * handles keep working, every name stays findable without the owner, and
 * freed space is zeroed and reused.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
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

describe("pages faulted in ahead of allocations", () => {
  it("closing while the background thread faults pages in never touches the released mapping", () => {
    for (let round = 0; round < 4; round++) {
      const owner = OwnedServiceFile.create(join(dir, `ahead-${round}.commy`), {
        serviceId: "ahead",
        maxSize: 512 * 1024 * 1024,
      });
      const big = Buffer.alloc(1024 * 1024, round + 1);
      // Each allocation queues the next 32 MiB above the heap's top.
      for (let i = 0; i < 8; i++) owner.allocate(`big-${i}`, big);
      // A touch that ran after this would be a write to a read-only page (SIGSEGV).
      owner.close();
    }
    const reopened = track(OwnedServiceFile.openOwned(join(dir, "ahead-3.commy")));
    // Buffer.equals: toEqual walks a MiB element by element, for seconds.
    expect(reopened.read("big-7").data.equals(Buffer.alloc(1024 * 1024, 4))).toBe(true);
  });

  it("faulting pages in changes no byte of the file", () => {
    const owner = track(
      OwnedServiceFile.create(path, { serviceId: "ahead", maxSize: 256 * 1024 * 1024 }),
    );
    const local = track(ServiceFile.open(path));
    const handle = local.handle(owner.allocate("v", Buffer.from("first")).name);
    for (let i = 0; i < 40; i++) {
      owner.allocate(`fill-${i}`, Buffer.alloc(512 * 1024, i));
      local.write(handle, Buffer.from(`write-${i}`));
    }
    owner.close();
    open.splice(open.indexOf(owner), 1);
    const reopened = track(OwnedServiceFile.openOwned(path));
    expect(reopened.read("v").data.toString()).toBe("write-39");
    for (let i = 0; i < 40; i++) {
      expect(reopened.read(`fill-${i}`).data.equals(Buffer.alloc(512 * 1024, i)), `fill-${i}`).toBe(
        true,
      );
    }
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

describe("the name index, rebuilt a few slots per allocation", () => {
  /** The index's header fields, read from the file without reading all of it. */
  function indexHeader(): { offset: number; capacity: number; live: number; tombstones: number } {
    const fd = openSync(path, "r");
    try {
      const word = (at: number): number => {
        const bytes = Buffer.alloc(4);
        readSync(fd, bytes, 0, 4, at);
        return bytes.readUInt32LE(0);
      };
      const offset = word(Header.INDEX_OFFSET);
      return {
        offset,
        capacity: word(offset + Index.CAPACITY),
        live: word(offset + Index.LIVE),
        tombstones: word(offset + Index.TOMBSTONES),
      };
    } finally {
      closeSync(fd);
    }
  }

  it("every name stays findable by another process at every step, under creates and deletes", () => {
    const owner = create();
    const local = track(ServiceFile.open(path));
    const live = new Map<string, number>();
    const indexes = new Set<number>();
    let next = 0;
    // Enough steps for several rebuilds (1024 → 2048 → 4096 slots); every
    // third step deletes, and names come back so that records are reused
    // while a rebuild is under way.
    for (let step = 0; step < 2600; step++) {
      if (step % 3 === 2) {
        const victim = `n-${(step * 7919) % next}`;
        if (live.has(victim)) {
          owner.deallocate(victim);
          live.delete(victim);
        }
      } else {
        const name = step % 11 === 0 && next > 10 ? `n-${next - 10}` : `n-${next++}`;
        if (!live.has(name)) {
          owner.allocate(name, Buffer.from(name));
          live.set(name, step);
        }
      }
      const index = indexHeader();
      indexes.add(index.offset);
      // Never more than half full: the probe of a missing name always ends.
      expect((index.live + index.tombstones) * 2).toBeLessThanOrEqual(index.capacity);
      if (step % 97 !== 0) continue;
      for (let i = 0; i < next; i++) {
        const name = `n-${i}`;
        if (live.has(name)) expect(local.read(name).data.toString(), name).toBe(name);
        else expect(local.find(name), name).toBeUndefined();
      }
    }
    expect(indexes.size).toBeGreaterThanOrEqual(3);
    expect(owner.variableCount).toBe(live.size);
    expect(owner.names()).toEqual([...live.keys()].sort());
    const fresh = track(ServiceFile.open(path));
    expect(fresh.list().map((v) => v.name)).toEqual([...live.keys()].sort());
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
