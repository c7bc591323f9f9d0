import { afterEach, describe, expect, it, vi } from "vitest";
import { ChangeCursor, type RecordReader, type VariableChange } from "./change-cursor.js";
import { ChangeKind, Header, RingEntry } from "./layout.js";

const RING_OFFSET = 4096;
const HEAD = Header.CHANGE_HEAD / 4;

interface FakeRecord {
  name: string;
  version: number;
  incarnation: number;
  live: boolean;
}

/** A ring in plain memory and records in a Map, in index order. */
class FakeFile implements RecordReader {
  readonly u32: Uint32Array;
  readonly records = new Map<number, FakeRecord>();
  #nextIncarnation = 1;

  constructor(readonly capacity: number) {
    this.u32 = new Uint32Array((RING_OFFSET + capacity * RingEntry.SIZE) / 4);
  }

  cursor(): ChangeCursor {
    return new ChangeCursor(this.u32, RING_OFFSET, this.capacity, this);
  }

  /** Reserves the next ring position and, unless `complete` is false, fills and publishes it. */
  announce(record: number, kind: number, complete = true): void {
    const position = Atomics.add(this.u32, HEAD, 1);
    if (!complete) return;
    const entry = (RING_OFFSET + (position & (this.capacity - 1)) * RingEntry.SIZE) / 4;
    this.u32[entry + RingEntry.RECORD / 4] = record;
    this.u32[entry + RingEntry.INCARNATION / 4] = this.records.get(record)?.incarnation ?? 0;
    this.u32[entry + RingEntry.KIND / 4] = kind;
    Atomics.store(this.u32, entry + RingEntry.SEQ / 4, (position + 1) >>> 0);
  }

  create(record: number, name: string, announce = true): void {
    this.records.set(record, {
      name,
      version: 1,
      incarnation: this.#nextIncarnation++,
      live: true,
    });
    if (announce) this.announce(record, ChangeKind.CREATE);
  }

  write(record: number, announce = true): void {
    (this.records.get(record) as FakeRecord).version++;
    if (announce) this.announce(record, ChangeKind.WRITE);
  }

  delete(record: number, announce = true): void {
    if (announce) this.announce(record, ChangeKind.DELETE);
    this.records.delete(record);
  }

  forEachRecord(visit: (record: number) => void): void {
    for (const record of this.records.keys()) visit(record);
  }
  recordName(record: number): string {
    return this.records.get(record)?.name ?? "";
  }
  recordVersion(record: number): number {
    return this.records.get(record)?.version ?? 0;
  }
  recordLive(record: number, incarnation: number): boolean {
    const found = this.records.get(record);
    return found !== undefined && found.live && found.incarnation === incarnation;
  }
  recordIncarnation(record: number): number {
    return this.records.get(record)?.incarnation ?? 0;
  }
  recordInBounds(record: number): boolean {
    return record >= 16;
  }

  /** name → version of every live record. */
  state(): Map<string, number> {
    return new Map([...this.records.values()].map((r) => [r.name, r.version]));
  }
}

/** Applies changes in order, as a consumer would, checking versions never go back. */
function apply(seen: Map<string, number>, changes: VariableChange[]): Map<string, number> {
  for (const change of changes) {
    if (change.kind === "delete") {
      seen.delete(change.name);
    } else {
      const before = seen.get(change.name);
      if (before !== undefined) expect(change.version).toBeGreaterThan(before);
      seen.set(change.name, change.version);
    }
  }
  return seen;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("ChangeCursor", () => {
  it("starts from now and reports the latest version of each changed variable once", () => {
    const file = new FakeFile(16);
    file.create(16, "a");
    const cursor = file.cursor();
    expect(cursor.drain()).toEqual([]);
    file.write(16);
    file.create(32, "b");
    file.write(16);
    expect(cursor.drain()).toEqual([
      { name: "a", version: 3, kind: "write" },
      { name: "b", version: 1, kind: "write" },
    ]);
    expect(cursor.drain()).toEqual([]);
    expect(cursor.position).toBe(Atomics.load(file.u32, HEAD));
  });

  it("reports a delete with the last version it knew, nothing for a variable born and gone", () => {
    const file = new FakeFile(16);
    file.create(16, "a");
    const cursor = file.cursor();
    file.write(16);
    file.delete(16);
    file.create(32, "ephemeral");
    file.delete(32);
    // The write's version died with the record: the delete carries what the cursor knew.
    expect(cursor.drain()).toEqual([{ name: "a", version: 1, kind: "delete" }]);
  });

  it("a record reused by another variable reports the delete before the new write", () => {
    const file = new FakeFile(16);
    file.create(16, "old");
    const cursor = file.cursor();
    file.delete(16);
    file.create(16, "new");
    expect(cursor.drain()).toEqual([
      { name: "old", version: 1, kind: "delete" },
      { name: "new", version: 1, kind: "write" },
    ]);
  });

  it("falls back to a rescan after more changes than the ring holds, still with the latest versions", () => {
    const file = new FakeFile(16);
    file.create(16, "a");
    file.create(32, "b");
    file.create(48, "doomed");
    const cursor = file.cursor();
    const seen = file.state();
    for (let i = 0; i < 40; i++) file.write(16);
    file.write(32);
    file.delete(48);
    file.create(64, "c");
    apply(seen, cursor.drain());
    expect(seen).toEqual(file.state());
    expect(cursor.position).toBe(Atomics.load(file.u32, HEAD));
  });

  it("a rescan reports a name's delete before its re-creation in another record", () => {
    const file = new FakeFile(16);
    file.create(0x200, "x");
    const cursor = file.cursor();
    file.delete(0x200);
    file.create(0x100, "x");
    for (let i = 0; i < 20; i++) file.write(0x100);
    const seen = apply(new Map([["x", 1]]), cursor.drain());
    expect(seen).toEqual(new Map([["x", 21]]));
  });

  it("a rescan reports every delete before the writes, whatever the index order", () => {
    const file = new FakeFile(16);
    file.create(0x100, "p");
    file.create(0x200, "q");
    const cursor = file.cursor();
    // p's record now holds q, and q's record holds p: both are new lives.
    file.delete(0x100);
    file.delete(0x200);
    file.create(0x100, "q");
    file.create(0x200, "p");
    for (let i = 0; i < 20; i++) file.write(0x100);
    const seen = apply(
      new Map([
        ["p", 1],
        ["q", 1],
      ]),
      cursor.drain(),
    );
    expect(seen).toEqual(file.state());
  });

  it("waits for an entry still being written, then rescans when its writer seems dead", () => {
    let now = 1_000_000;
    vi.spyOn(Date, "now").mockImplementation(() => now);
    const file = new FakeFile(16);
    file.create(16, "a");
    file.create(32, "b");
    const cursor = file.cursor();
    file.write(16);
    file.write(32, false);
    file.announce(32, ChangeKind.WRITE, false); // reserved, never completed
    file.write(16);
    expect(cursor.drain()).toEqual([{ name: "a", version: 3, kind: "write" }]);
    expect(cursor.pending).toBe(true);
    now += 50;
    expect(cursor.drain()).toEqual([]);
    expect(cursor.pending).toBe(true);
    now += 100;
    expect(cursor.drain()).toEqual([{ name: "b", version: 2, kind: "write" }]);
    expect(cursor.pending).toBe(false);
    expect(cursor.position).toBe(Atomics.load(file.u32, HEAD));
  });

  it("an entry completed late is taken as it comes", () => {
    const file = new FakeFile(16);
    file.create(16, "a");
    const cursor = file.cursor();
    const position = Atomics.load(file.u32, HEAD);
    file.write(16, false);
    Atomics.add(file.u32, HEAD, 1); // reserved
    expect(cursor.drain()).toEqual([]);
    expect(cursor.pending).toBe(true);
    // The writer finishes its entry.
    const entry = (RING_OFFSET + (position & 15) * RingEntry.SIZE) / 4;
    file.u32[entry + RingEntry.RECORD / 4] = 16;
    file.u32[entry + RingEntry.INCARNATION / 4] = file.recordIncarnation(16);
    file.u32[entry + RingEntry.KIND / 4] = ChangeKind.WRITE;
    Atomics.store(file.u32, entry, position + 1);
    expect(cursor.drain()).toEqual([{ name: "a", version: 2, kind: "write" }]);
    expect(cursor.pending).toBe(false);
  });

  it("survives the 32-bit ring position wrapping around", () => {
    const file = new FakeFile(16);
    Atomics.store(file.u32, HEAD, 0xffffffff - 5);
    file.create(16, "a");
    const cursor = file.cursor();
    for (let i = 0; i < 12; i++) file.write(16);
    expect(Atomics.load(file.u32, HEAD)).toBeLessThan(100);
    expect(cursor.drain()).toEqual([{ name: "a", version: 13, kind: "write" }]);
    for (let i = 0; i < 40; i++) file.write(16);
    expect(cursor.drain()).toEqual([{ name: "a", version: 53, kind: "write" }]);
  });
});
