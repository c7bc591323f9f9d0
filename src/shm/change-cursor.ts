/**
 * Internal: a reader's position in a service file's change ring. It turns
 * ring entries into per-variable changes, only ever forwards in version,
 * and falls back to comparing every record's version when it fell more
 * than a ring behind or met an entry whose writer died half-way.
 */
import { ChangeKind, Header, RingEntry } from "./layout.js";

/** One variable changed: its latest version, or its deletion. */
export interface VariableChange {
  name: string;
  /** The version now current (for a delete: the last one it had). */
  version: number;
  kind: "write" | "delete";
}

/** @internal What the cursor needs to know of records. */
export interface RecordReader {
  forEachRecord(visit: (record: number) => void): void;
  recordName(record: number): string;
  recordVersion(record: number): number;
  recordLive(record: number, incarnation: number): boolean;
  recordIncarnation(record: number): number;
  recordInBounds(record: number): boolean;
}

interface Known {
  incarnation: number;
  name: string;
  version: number;
}

const W = (byteOffset: number): number => byteOffset >>> 2;
const HEAD = W(Header.CHANGE_HEAD);
/** How long an entry may stay half-written before its writer counts as dead. */
const STALL_LIMIT_MS = 100;
/**
 * What `drain()` returns when nothing changed: one shared, frozen array, so
 * that a reader polling in a tight loop allocates nothing (garbage made at
 * tens of millions of polls a second meant a scavenge every few ms, each
 * one a latency spike).
 */
const NO_CHANGES: VariableChange[] = Object.freeze([]) as unknown as VariableChange[];

export class ChangeCursor {
  #position: number;
  #stalledSince = 0;
  readonly #known = new Map<number, Known>();
  readonly #mask: number;

  constructor(
    private readonly u32: Uint32Array,
    private readonly ringOffset: number,
    private readonly capacity: number,
    private readonly reader: RecordReader,
  ) {
    this.#mask = capacity - 1;
    this.#position = Atomics.load(u32, HEAD);
    this.reader.forEachRecord((record) => {
      const incarnation = reader.recordIncarnation(record);
      if (!reader.recordLive(record, incarnation)) return;
      this.#known.set(record, {
        incarnation,
        name: reader.recordName(record),
        version: reader.recordVersion(record),
      });
    });
  }

  /** The ring position this cursor has read up to (the futex word's value). */
  get position(): number {
    return this.#position;
  }

  /** True when an entry is still being written: call `drain()` again soon. */
  get pending(): boolean {
    return this.#stalledSince !== 0;
  }

  /**
   * Changes announced since the last call. When there are none, the result
   * is a shared frozen empty array: do not modify it.
   */
  drain(): VariableChange[] {
    const head = Atomics.load(this.u32, HEAD);
    if (head === this.#position) return NO_CHANGES;
    const changes: VariableChange[] = [];
    if ((head - this.#position) >>> 0 > this.capacity) return this.#rescanTo(head, changes);
    while (this.#position !== head) {
      const entry = this.ringOffset + (this.#position & this.#mask) * RingEntry.SIZE;
      const expected = (this.#position + 1) >>> 0;
      const seq = Atomics.load(this.u32, W(entry + RingEntry.SEQ));
      if (seq !== expected) return this.#lapped(seq, expected, head, changes);
      const record = this.u32[W(entry + RingEntry.RECORD)] as number;
      const incarnation = this.u32[W(entry + RingEntry.INCARNATION)] as number;
      const kind = this.u32[W(entry + RingEntry.KIND)] as number;
      if (Atomics.load(this.u32, W(entry + RingEntry.SEQ)) !== expected) {
        return this.#rescanTo(head, changes);
      }
      this.#stalledSince = 0;
      this.#apply(record, incarnation, kind, changes);
      this.#position = expected;
    }
    return changes;
  }

  /** An entry at our position is not the one we expect. */
  #lapped(
    seq: number,
    expected: number,
    head: number,
    changes: VariableChange[],
  ): VariableChange[] {
    if (((seq - expected) | 0) > 0) return this.#rescanTo(head, changes);
    // Older than expected: its writer has reserved it but not finished.
    const now = Date.now();
    if (this.#stalledSince === 0) this.#stalledSince = now;
    if (now - this.#stalledSince > STALL_LIMIT_MS) return this.#rescanTo(head, changes);
    return changes;
  }

  #apply(record: number, incarnation: number, kind: number, changes: VariableChange[]): void {
    if (!this.reader.recordInBounds(record)) return;
    const known = this.#known.get(record);
    if (kind === ChangeKind.DELETE) {
      if (known !== undefined && known.incarnation === incarnation) {
        this.#known.delete(record);
        changes.push({ name: known.name, version: known.version, kind: "delete" });
      }
      return;
    }
    if (!this.reader.recordLive(record, incarnation)) return;
    this.#observe(record, incarnation, known, changes);
  }

  #observe(
    record: number,
    incarnation: number,
    known: Known | undefined,
    changes: VariableChange[],
  ): void {
    const version = this.reader.recordVersion(record);
    if (known !== undefined && known.incarnation === incarnation) {
      if (version > known.version) {
        known.version = version;
        changes.push({ name: known.name, version, kind: "write" });
      }
      return;
    }
    if (known !== undefined)
      changes.push({ name: known.name, version: known.version, kind: "delete" });
    const name = this.reader.recordName(record);
    this.#known.set(record, { incarnation, name, version });
    changes.push({ name, version, kind: "write" });
  }

  /** Compares every record with what we know: the fallback, never the routine. */
  #rescanTo(head: number, changes: VariableChange[]): VariableChange[] {
    const live = new Map<number, number>();
    this.reader.forEachRecord((record) => {
      const incarnation = this.reader.recordIncarnation(record);
      if (this.reader.recordLive(record, incarnation)) live.set(record, incarnation);
    });
    // Deletes first: a name deleted and created again (in any record) must
    // end up live for a consumer that applies the changes in order.
    for (const [record, known] of this.#known) {
      if (live.get(record) === known.incarnation) continue;
      this.#known.delete(record);
      changes.push({ name: known.name, version: known.version, kind: "delete" });
    }
    for (const [record, incarnation] of live) {
      this.#observe(record, incarnation, this.#known.get(record), changes);
    }
    this.#position = head;
    this.#stalledSince = 0;
    return changes;
  }
}
