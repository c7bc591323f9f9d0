/**
 * A mapped service file as any local process sees it: find variables by
 * name, read them with no copy beyond the caller's buffer and no lock,
 * write them in place, and learn of every change. Structure (creating,
 * deleting, relocating variables, growing the file) is the owner's job:
 * see OwnedServiceFile.
 */
import { native, type NativeWatcher, WaitCode } from "./native.js";
import { type Mapping, mapExisting, unmap, unmapAndUnlinkInBackground } from "./mapping.js";
import {
  ChangeKind,
  HEADER_SIZE,
  Header,
  Index,
  MAX_VALUE_SIZE,
  Record,
  RecordState,
  RingEntry,
  Slot,
  hashValidName,
} from "./layout.js";
import { ShmError } from "./shm-error.js";
import { isProcessAlive } from "./process-liveness.js";
import { ChangeCursor, type VariableChange } from "./change-cursor.js";

const W = (byteOffset: number): number => byteOffset >>> 2;
const HEAD = W(Header.CHANGE_HEAD);
const WAITERS = W(Header.WAITERS);
const OWNER_WAITERS = W(Header.OWNER_WAITERS);
const SIZE = W(Header.SIZE);
const GENERATION = W(Header.GENERATION);
const TWO_32 = 2 ** 32;
/** Retries of an optimistic read racing a writer before giving up. */
const MAX_READ_RETRIES = 100_000;
/** How long a writer waits for a live process holding a variable's lock. */
const DEFAULT_LOCK_PATIENCE_MS = 2_000;
/**
 * A read-only mapping cannot count itself in WAITERS (that is a write), so
 * writers may not wake it: it re-checks the change word at least this often
 * (the native watcher thread does the same, every 100 ms).
 */
const READ_ONLY_RECHECK_MS = 100;

/** A variable found by name: keep it to read and write without a lookup. */
export class VariableHandle {
  /** The version of the value last read or written through this handle. */
  version = 0;
  /** @internal Views of the two slots, reused while a slot keeps its place and length. */
  view0: Uint8Array | undefined = undefined;
  /** @internal */ view1: Uint8Array | undefined = undefined;
  /** @internal offset × 2^21 + length of view0 (values are ≤ 1 MiB < 2^21) */
  key0 = -1;
  /** @internal */ key1 = -1;
  /** @internal */
  constructor(
    readonly name: string,
    /** @internal byte offset of the record */
    readonly record: number,
    /** @internal which life of the record this handle belongs to */
    readonly incarnation: number,
  ) {}
}

/** What `list()` tells of a variable. */
export interface VariableInfo {
  name: string;
  version: number;
  size: number;
  capacity: number;
}

/** A value with its version. */
export interface VersionedValue {
  data: Buffer;
  version: number;
}

/** Options of a write. */
export interface WriteOptions {
  /** Compare-and-set: write only when the variable is at this version. */
  expectedVersion?: number;
}

/** Options of `changes()`. */
export interface ChangesOptions {
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** Microseconds the waiting thread spins before it sleeps (latency vs CPU). */
  spinMicros?: number;
}

export { type VariableChange } from "./change-cursor.js";

export class ServiceFile {
  /** @internal */ protected readonly map: Mapping;
  /** @internal */ protected readonly u8: Uint8Array;
  /** @internal */ protected readonly u32: Uint32Array;
  readonly #ringOffset: number;
  readonly #ringMask: number;
  readonly #handles = new Map<string, VariableHandle>();
  readonly #watchers = new Set<NativeWatcher>();
  #closed = false;
  /**
   * @internal How long a writer spins for a live process holding a
   * variable's lock before LOCKED. The owner (a server with an event loop
   * to keep free) sets 0 and waits asynchronously instead.
   */
  protected lockPatienceMs = DEFAULT_LOCK_PATIENCE_MS;
  /** File size last seen: it only grows, so a stale value is merely cautious. */
  #size: number;
  #cursor: ChangeCursor | undefined;
  readonly #onClose = new Set<() => void>();

  /** @internal */
  protected constructor(mapping: Mapping) {
    this.map = mapping;
    this.u8 = mapping.u8;
    this.u32 = mapping.u32;
    this.#ringOffset = this.u32[W(Header.RING_OFFSET)] as number;
    this.#ringMask = (this.u32[W(Header.RING_CAPACITY)] as number) - 1;
    this.#size = Atomics.load(this.u32, SIZE);
  }

  /**
   * Maps an existing service file. A local process may read and write
   * values in place; `readOnly` maps it without write access.
   */
  static open(path: string, options: { readOnly?: boolean } = {}): ServiceFile {
    const { mapping, facts } = mapExisting(path, options.readOnly !== true);
    if (!facts.ready) {
      unmap(mapping);
      throw new ShmError("CORRUPT", `${path} is not initialised (its ready flag is unset)`);
    }
    return new ServiceFile(mapping);
  }

  get path(): string {
    return this.map.path;
  }

  /** The id of the service this file belongs to. */
  get serviceId(): string {
    const start = Header.SERVICE_ID;
    const bytes = this.u8.subarray(start, start + Header.SERVICE_ID_LENGTH);
    const end = bytes.indexOf(0);
    return Buffer.from(bytes.subarray(0, end < 0 ? bytes.length : end)).toString("latin1");
  }

  /** True once the owner deleted the service: let go of the file. */
  get deleted(): boolean {
    return this.#closed || Atomics.load(this.u32, W(Header.DELETED)) !== 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes of the file in use (it grows). */
  get size(): number {
    return Atomics.load(this.u32, SIZE);
  }

  /** The handle of a variable, or undefined when there is none by that name. */
  find(name: string): VariableHandle | undefined {
    this.assertOpen();
    const cached = this.#handles.get(name);
    if (cached !== undefined && this.isCurrent(cached)) return cached;
    if (cached !== undefined) this.#handles.delete(name);
    const hash = hashValidName(name);
    if (hash < 0) return undefined;
    const record = this.findRecord(name, hash);
    if (record === 0) return undefined;
    const handle = new VariableHandle(
      name,
      record,
      Atomics.load(this.u32, W(record + Record.INCARNATION)),
    );
    if (!this.isCurrent(handle)) return undefined;
    this.#handles.set(name, handle);
    return handle;
  }

  /** The handle of a variable; throws NOT_FOUND when there is none. */
  handle(name: string): VariableHandle {
    const handle = this.find(name);
    if (handle === undefined) throw notFound(name);
    return handle;
  }

  /** Reads a variable into a new Buffer. */
  read(variable: string | VariableHandle): VersionedValue {
    const handle = this.#resolve(variable);
    const u32 = this.u32;
    const ctlIndex = W(handle.record + Record.CTL);
    for (let attempt = 0; attempt < MAX_READ_RETRIES; attempt++) {
      const ctl = Atomics.load(u32, ctlIndex);
      const view = this.#slotView(handle, ctl & 1);
      const slot = W(handle.record + (ctl & 1 ? Record.SLOT1 : Record.SLOT0));
      const version = (u32[slot + 4] as number) * TWO_32 + (u32[slot + 3] as number);
      const data = view === undefined ? undefined : Buffer.from(view);
      // Plain read after the second load: a reused record has another incarnation.
      if (
        Atomics.load(u32, ctlIndex) === ctl &&
        u32[W(handle.record + Record.INCARNATION)] === handle.incarnation
      ) {
        if (data === undefined) break;
        handle.version = version;
        return { data, version };
      }
      this.#checkStillThere(handle);
    }
    throw new ShmError("CORRUPT", `${this.map.path}: ${handle.name} cannot be read consistently`);
  }

  /**
   * Reads a variable into `target` (which must be large enough) and returns
   * the number of bytes; the version read is left in `handle.version`. This
   * is the zero-allocation path: no lock, no copy but into `target`.
   */
  readInto(handle: VariableHandle, target: Uint8Array): number {
    const u32 = this.u32;
    const ctlIndex = W(handle.record + Record.CTL);
    for (let attempt = 0; attempt < MAX_READ_RETRIES; attempt++) {
      const ctl = Atomics.load(u32, ctlIndex);
      const view = this.#slotView(handle, ctl & 1);
      const slot = W(handle.record + (ctl & 1 ? Record.SLOT1 : Record.SLOT0));
      const version = (u32[slot + 4] as number) * TWO_32 + (u32[slot + 3] as number);
      if (view !== undefined && view.length <= target.length) target.set(view);
      // Plain read after the second load: a reused record has another incarnation.
      if (
        Atomics.load(u32, ctlIndex) === ctl &&
        u32[W(handle.record + Record.INCARNATION)] === handle.incarnation
      ) {
        if (view === undefined) break;
        if (view.length > target.length) {
          throw new ShmError(
            "TOO_LARGE",
            `${handle.name} holds ${view.length} bytes; the buffer has ${target.length}`,
          );
        }
        handle.version = version;
        return view.length;
      }
      this.#checkStillThere(handle);
    }
    throw new ShmError("CORRUPT", `${this.map.path}: ${handle.name} cannot be read consistently`);
  }

  /** The current version of a variable, without reading its value. */
  version(variable: string | VariableHandle): number {
    const handle = this.#resolve(variable);
    for (let attempt = 0; attempt < MAX_READ_RETRIES; attempt++) {
      const ctl = Atomics.load(this.u32, W(handle.record + Record.CTL));
      const version = this.#slotVersion(handle.record + (ctl & 1 ? Record.SLOT1 : Record.SLOT0));
      if (this.#settled(handle, ctl)) return version;
      this.#checkStillThere(handle);
    }
    throw new ShmError("LOCKED", `${handle.name} changes too fast to be read`);
  }

  /**
   * Writes a value in place and returns the new version. Every write is
   * announced in the change ring and wakes sleeping readers. A value larger
   * than the variable's capacity needs the owner (CAPACITY).
   */
  write(variable: string | VariableHandle, data: Uint8Array, options: WriteOptions = {}): number {
    this.assertWritable();
    if (data.length > MAX_VALUE_SIZE) checkValueSize(data.length);
    const handle = typeof variable === "string" ? this.handle(variable) : variable;
    // A stale handle's record may hold another variable's bytes by now: its
    // "lock word" is not a lock, so never compare-and-swap into it.
    if (!this.isCurrent(handle)) this.#checkStillThere(handle);
    this.lockRecord(handle.record);
    try {
      // The lock's compare-and-swap orders this read after any delete.
      if (this.u32[W(handle.record + Record.INCARNATION)] !== handle.incarnation) {
        this.#checkStillThere(handle);
      }
      return this.writeLocked(handle, data, options);
    } finally {
      Atomics.store(this.u32, W(handle.record + Record.LOCK), 0);
    }
  }

  /** Every live variable with its version and size. */
  list(): VariableInfo[] {
    this.assertOpen();
    const variables: VariableInfo[] = [];
    this.forEachRecord((record) => {
      const info = this.#recordInfo(record);
      if (info !== undefined) variables.push(info);
    });
    return variables.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** What a variable's record says, or undefined if it is not live. */
  info(variable: string | VariableHandle): VariableInfo {
    const handle = this.#resolve(variable);
    const info = this.#recordInfo(handle.record);
    if (info === undefined) throw notFound(handle.name);
    return info;
  }

  /**
   * Changes since the previous call (the first call starts from now), without
   * waiting. Versions of one variable only go up; writes that happened
   * between two calls may arrive as one change with the latest version.
   */
  pollChanges(): VariableChange[] {
    this.assertOpen();
    return this.#changeCursor().drain();
  }

  /**
   * Blocks the calling thread until something changes or the timeout runs
   * out; returns true when something changed. For worker threads and tight
   * measurement loops: on the main thread use `changes()` or `watch()`.
   */
  waitForChangeSync(timeoutMs: number, spinMicros = 0): boolean {
    this.assertOpen();
    const cursor = this.#changeCursor();
    if (this.map.writable) {
      const outcome = native.waitSync(
        this.map.buffer,
        Header.CHANGE_HEAD,
        cursor.position,
        timeoutMs,
        spinMicros,
        this.waitersField,
      );
      return outcome !== WaitCode.TIMED_OUT;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.min(READ_ONLY_RECHECK_MS, Math.max(0, Math.ceil(deadline - Date.now())));
      const outcome = native.waitSync(
        this.map.buffer,
        Header.CHANGE_HEAD,
        cursor.position,
        slice,
        spinMicros,
        undefined,
      );
      if (outcome !== WaitCode.TIMED_OUT) return true;
      if (Date.now() >= deadline) return false;
    }
  }

  /**
   * Calls `onChanges` on the event loop each time other processes (or this
   * one) change variables. A thread sleeps on the file's change word, so
   * nothing polls. When the owner deletes the service, `onChanges` gets an
   * empty batch and `deleted` is true: let go of the file then. All
   * watchers and `pollChanges()` of one ServiceFile share one position in
   * the change ring, so each change reaches exactly one of them; open the
   * file twice for independent consumers. Returns a function that stops
   * watching.
   */
  watch(onChanges: (changes: VariableChange[]) => void, spinMicros = 0): () => void {
    this.assertOpen();
    const cursor = this.#changeCursor();
    let retry: NodeJS.Immediate | undefined;
    const deliver = (): void => {
      retry = undefined;
      if (this.#closed) return;
      const changes = this.pollChanges();
      // A writer reserved an entry but has not finished it: look again soon,
      // since its completion does not move the word the thread sleeps on.
      if (this.#cursor?.pending === true) retry ??= setImmediate(deliver);
      // An empty batch tells a watcher that the service was deleted.
      if (changes.length > 0 || this.deleted) onChanges(changes);
    };
    const watcher = native.watch(
      this.map.buffer,
      Header.CHANGE_HEAD,
      this.map.writable ? this.waitersField : undefined,
      deliver,
      spinMicros,
    );
    this.#watchers.add(watcher);
    // Changes announced before the thread's first look (since the last
    // pollChanges) never move the word it sleeps on: deliver them now.
    if (Atomics.load(this.u32, HEAD) !== cursor.position) retry = setImmediate(deliver);
    return () => {
      if (retry !== undefined) clearImmediate(retry);
      if (this.#watchers.delete(watcher)) watcher.close();
    };
  }

  /** The same as `watch()`, as an async iterator of batches of changes. */
  async *changes(options: ChangesOptions = {}): AsyncGenerator<VariableChange[]> {
    const queue: VariableChange[][] = [];
    let wakeUp: (() => void) | undefined;
    const stop = this.watch((changes) => {
      queue.push(changes);
      wakeUp?.();
    }, options.spinMicros ?? 0);
    const onAbort = (): void => wakeUp?.();
    options.signal?.addEventListener("abort", onAbort);
    this.#onClose.add(onAbort);
    try {
      while (options.signal?.aborted !== true && !this.#closed) {
        const batch = queue.shift();
        if (batch !== undefined && batch.length > 0) yield batch;
        if (this.deleted) break;
        if (batch !== undefined) continue;
        await new Promise<void>((resolve) => (wakeUp = resolve));
        wakeUp = undefined;
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      this.#onClose.delete(onAbort);
      stop();
    }
  }

  /** Flushes the file's pages to disk. */
  sync(): void {
    this.assertOpen();
    native.sync(this.map.buffer, 0, this.size, this.map.path);
  }

  /** Unmaps the file. Handles and views taken from it stop working. */
  close(): void {
    if (this.#detach()) unmap(this.map);
  }

  /**
   * Closes each file as `close()` does and unlinks it; the unmapping,
   * closing and unlinking run in one job on libuv's threadpool. Best
   * effort: a file left behind is an orphan its owner removes at its next
   * start. Views taken from a file read its old bytes, then zeros.
   */
  static closeAndUnlinkInBackground(files: readonly ServiceFile[]): Promise<void> {
    const mappings = files.filter((file) => file.#detach()).map((file) => file.map);
    return unmapAndUnlinkInBackground(mappings);
  }

  /** Marks the file closed and lets go of what uses it; false when it already was. */
  #detach(): boolean {
    if (this.#closed) return false;
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers.clear();
    this.#closed = true;
    this.#handles.clear();
    // Ends the changes() iterations waiting on this file.
    for (const wake of [...this.#onClose]) wake();
    return true;
  }

  // ---- internals shared with OwnedServiceFile ----

  /** @internal */
  protected assertOpen(): void {
    if (this.#closed) throw new ShmError("CLOSED", `${this.map.path} is closed`);
  }

  /** @internal */
  protected assertWritable(): void {
    this.assertOpen();
    if (!this.map.writable) throw new ShmError("READ_ONLY", `${this.map.path} is mapped read-only`);
    if (this.u32[W(Header.DELETED)] !== 0) {
      throw new ShmError("DELETED", `the service of ${this.map.path} was deleted`);
    }
  }

  /** @internal Is the handle's record still the same live variable? */
  protected isCurrent(handle: VariableHandle): boolean {
    // Plain reads: a hint for lookups; reads and writes re-check under CTL or the lock.
    const u32 = this.u32;
    return (
      u32[W(handle.record + Record.STATE)] === RecordState.LIVE &&
      u32[W(handle.record + Record.INCARNATION)] === handle.incarnation
    );
  }

  /** @internal Offset of the live record named `name` (whose hash is `hash`), or 0. */
  protected findRecord(name: string, hash: number): number {
    const u32 = this.u32;
    for (let attempt = 0; attempt < 8; attempt++) {
      const generation = Atomics.load(u32, GENERATION);
      const found = this.#probe(name, hash);
      if (found !== 0) return found;
      if (Atomics.load(u32, GENERATION) === generation) return 0;
    }
    return 0;
  }

  /** @internal Calls `visit` with every record the index points at. */
  protected forEachRecord(visit: (record: number) => void): void {
    const index = Atomics.load(this.u32, W(Header.INDEX_OFFSET));
    const capacity = this.indexCapacity(index);
    for (let i = 0; i < capacity; i++) {
      const record = Atomics.load(this.u32, W(index + Index.SLOTS) + i);
      if (record > Index.TOMBSTONE && this.recordInBounds(record)) visit(record);
    }
  }

  /** @internal Capacity of the index block at `index`, checked. */
  protected indexCapacity(index: number): number {
    const size = Atomics.load(this.u32, SIZE);
    if (index + Index.SLOTS > size || index % 4 !== 0) return 0;
    const capacity = this.u32[W(index + Index.CAPACITY)] as number;
    if ((capacity & (capacity - 1)) !== 0 || index + Index.SLOTS + capacity * 4 > size) return 0;
    return capacity;
  }

  /** @internal */
  protected recordInBounds(record: number): boolean {
    return record % 16 === 0 && record + Record.SIZE <= Atomics.load(this.u32, SIZE);
  }

  /** @internal The name stored in a record. */
  protected recordName(record: number): string {
    const length = Math.min(this.u32[W(record + Record.NAME_LENGTH)] as number, 128);
    return Buffer.from(
      this.u8.subarray(record + Record.NAME, record + Record.NAME + length),
    ).toString("latin1");
  }

  /** @internal Takes a record's write lock, recovering it from a dead holder. */
  protected lockRecord(record: number): void {
    const index = W(record + Record.LOCK);
    const pid = process.pid;
    let deadline = 0;
    for (let spins = 0; ; spins++) {
      const holder = Atomics.compareExchange(this.u32, index, 0, pid);
      if (holder === 0) return;
      if (spins % 1024 !== 1023) continue;
      if (
        !isProcessAlive(holder) &&
        Atomics.compareExchange(this.u32, index, holder, pid) === holder
      ) {
        // The dead writer may have published a value without announcing it.
        this.announce(
          record,
          Atomics.load(this.u32, W(record + Record.INCARNATION)),
          ChangeKind.WRITE,
        );
        return;
      }
      const now = Date.now();
      if (deadline === 0) deadline = now + this.lockPatienceMs;
      if (now > deadline) {
        throw new ShmError(
          "LOCKED",
          `process ${holder} holds ${this.recordName(record)} for too long`,
        );
      }
    }
  }

  /** @internal */
  protected unlockRecord(record: number): void {
    Atomics.store(this.u32, W(record + Record.LOCK), 0);
  }

  /**
   * @internal Writes into the inactive slot and publishes it; the caller
   * holds the lock and has checked the record. Throws CAPACITY when the
   * value does not fit (the owner overrides this to relocate).
   */
  protected writeLocked(handle: VariableHandle, data: Uint8Array, options: WriteOptions): number {
    // Only the lock holder changes CTL and the slots: plain reads suffice.
    const u32 = this.u32;
    const ctlIndex = W(handle.record + Record.CTL);
    const ctl = u32[ctlIndex] as number;
    const current = W(handle.record + (ctl & 1 ? Record.SLOT1 : Record.SLOT0));
    const next = W(handle.record + (ctl & 1 ? Record.SLOT0 : Record.SLOT1));
    const version = (u32[current + 4] as number) * TWO_32 + (u32[current + 3] as number);
    if (options.expectedVersion !== undefined && options.expectedVersion !== version) {
      throw new ShmError(
        "VERSION_CONFLICT",
        `${handle.name} is at version ${version}, not ${options.expectedVersion}`,
      );
    }
    const offset = u32[next] as number;
    const capacity = u32[next + 1] as number;
    if (data.length > capacity) return this.writeBeyondCapacity(handle, data, version, capacity);
    if (!this.#inBounds(offset, capacity)) {
      throw new ShmError("CORRUPT", `${this.map.path}: ${handle.name} points outside the file`);
    }
    this.u8.set(data, offset);
    const nextVersion = version + 1;
    u32[next + 2] = data.length;
    u32[next + 3] = nextVersion % TWO_32;
    u32[next + 4] = (nextVersion / TWO_32) >>> 0;
    Atomics.store(u32, ctlIndex, (ctl + 1) >>> 0);
    handle.version = nextVersion;
    this.announce(handle.record, handle.incarnation, ChangeKind.WRITE);
    return nextVersion;
  }

  /** @internal A local process cannot relocate; the owner can. */
  protected writeBeyondCapacity(
    handle: VariableHandle,
    data: Uint8Array,
    _version: number,
    capacity: number,
  ): number {
    throw new ShmError(
      "CAPACITY",
      `${handle.name} holds at most ${capacity} bytes in place; write ${data.length} through the server`,
    );
  }

  /** @internal Appends a change to the ring and wakes sleepers. */
  protected announce(record: number, incarnation: number, kind: number): void {
    const u32 = this.u32;
    const position = Atomics.add(u32, HEAD, 1);
    const entry = this.#ringOffset + (position & this.#ringMask) * RingEntry.SIZE;
    u32[W(entry + RingEntry.RECORD)] = record;
    u32[W(entry + RingEntry.INCARNATION)] = incarnation;
    u32[W(entry + RingEntry.KIND)] = kind;
    Atomics.store(u32, W(entry + RingEntry.SEQ), (position + 1) >>> 0);
    // Plain reads: the add above is a full barrier (see docs/file-format.md).
    if (this.othersWaiting()) this.wakeWaiters();
  }

  /** @internal Does anyone but this writer sleep on the change word? */
  protected othersWaiting(): boolean {
    return this.u32[WAITERS] !== 0 || this.u32[OWNER_WAITERS] !== 0;
  }

  /** @internal The counter this process's sleepers register in. */
  protected get waitersField(): number {
    return Header.WAITERS;
  }

  /** @internal */
  protected wakeWaiters(): void {
    native.wake(this.map.buffer, Header.CHANGE_HEAD);
  }

  // ---- private ----

  #changeCursor(): ChangeCursor {
    this.#cursor ??= new ChangeCursor(this.u32, this.#ringOffset, this.#ringMask + 1, {
      forEachRecord: (visit) => this.forEachRecord(visit),
      recordName: (record) => this.recordName(record),
      recordVersion: (record) => this.#recordVersion(record),
      recordLive: (record, incarnation) =>
        Atomics.load(this.u32, W(record + Record.STATE)) === RecordState.LIVE &&
        Atomics.load(this.u32, W(record + Record.INCARNATION)) === incarnation,
      recordIncarnation: (record) => Atomics.load(this.u32, W(record + Record.INCARNATION)),
      recordInBounds: (record) => this.recordInBounds(record),
    });
    return this.#cursor;
  }

  #resolve(variable: string | VariableHandle): VariableHandle {
    if (typeof variable === "string") return this.handle(variable);
    this.assertOpen();
    return variable;
  }

  #probe(name: string, hash: number): number {
    const u32 = this.u32;
    const index = Atomics.load(u32, W(Header.INDEX_OFFSET));
    const capacity = this.indexCapacity(index);
    const slots = W(index + Index.SLOTS);
    for (
      let probe = 0, i = hash & (capacity - 1);
      probe < capacity;
      probe++, i = (i + 1) & (capacity - 1)
    ) {
      const record = Atomics.load(u32, slots + i);
      if (record === Index.EMPTY) return 0;
      if (record === Index.TOMBSTONE || !this.recordInBounds(record)) continue;
      if (
        u32[W(record + Record.NAME_HASH)] === hash &&
        u32[W(record + Record.NAME_LENGTH)] === name.length &&
        Atomics.load(u32, W(record + Record.STATE)) === RecordState.LIVE &&
        this.#nameIs(record, name)
      ) {
        return record;
      }
    }
    return 0;
  }

  #nameIs(record: number, name: string): boolean {
    const start = record + Record.NAME;
    for (let i = 0; i < name.length; i++) {
      if (this.u8[start + i] !== name.charCodeAt(i)) return false;
    }
    return true;
  }

  #slotVersion(slot: number): number {
    return (
      (this.u32[W(slot + Slot.VERSION_HI)] as number) * TWO_32 +
      (this.u32[W(slot + Slot.VERSION_LO)] as number)
    );
  }

  #recordVersion(record: number): number {
    for (let attempt = 0; attempt < MAX_READ_RETRIES; attempt++) {
      const ctl = Atomics.load(this.u32, W(record + Record.CTL));
      const version = this.#slotVersion(record + (ctl & 1 ? Record.SLOT1 : Record.SLOT0));
      if (Atomics.load(this.u32, W(record + Record.CTL)) === ctl) return version;
    }
    return 0;
  }

  #recordInfo(record: number): VariableInfo | undefined {
    const incarnation = Atomics.load(this.u32, W(record + Record.INCARNATION));
    for (let attempt = 0; attempt < MAX_READ_RETRIES; attempt++) {
      if (Atomics.load(this.u32, W(record + Record.STATE)) !== RecordState.LIVE) return undefined;
      const ctl = Atomics.load(this.u32, W(record + Record.CTL));
      const slot = record + (ctl & 1 ? Record.SLOT1 : Record.SLOT0);
      const info: VariableInfo = {
        name: this.recordName(record),
        version: this.#slotVersion(slot),
        size: this.u32[W(slot + Slot.LENGTH)] as number,
        capacity: this.u32[W(slot + Slot.CAPACITY)] as number,
      };
      if (
        Atomics.load(this.u32, W(record + Record.CTL)) === ctl &&
        Atomics.load(this.u32, W(record + Record.INCARNATION)) === incarnation
      ) {
        return info;
      }
    }
    return undefined;
  }

  /** True when nothing moved under a read that began at `ctl`. */
  #settled(handle: VariableHandle, ctl: number): boolean {
    const u32 = this.u32;
    return (
      Atomics.load(u32, W(handle.record + Record.CTL)) === ctl &&
      Atomics.load(u32, W(handle.record + Record.STATE)) === RecordState.LIVE &&
      Atomics.load(u32, W(handle.record + Record.INCARNATION)) === handle.incarnation
    );
  }

  #checkStillThere(handle: VariableHandle): void {
    if (this.#closed) throw new ShmError("CLOSED", `${this.map.path} is closed`);
    if (!this.isCurrent(handle)) {
      this.#handles.delete(handle.name);
      throw notFound(handle.name);
    }
  }

  #inBounds(offset: number, length: number): boolean {
    if (offset >= HEADER_SIZE && offset + length <= this.#size) return true;
    this.#size = Atomics.load(this.u32, SIZE);
    return offset >= HEADER_SIZE && offset + length <= this.#size;
  }

  /** A view of a slot's current value, cached on the handle; undefined if out of bounds. */
  #slotView(handle: VariableHandle, which: number): Uint8Array | undefined {
    const slot = W(handle.record + (which ? Record.SLOT1 : Record.SLOT0));
    const offset = this.u32[slot] as number;
    const length = this.u32[slot + 2] as number;
    const key = offset * 2 ** 21 + length;
    if (which === 0 ? key === handle.key0 : key === handle.key1) {
      return which === 0 ? handle.view0 : handle.view1;
    }
    if (!this.#inBounds(offset, length) || length > MAX_VALUE_SIZE) return undefined;
    const view = new Uint8Array(this.map.buffer, offset, length);
    if (which === 0) {
      handle.view0 = view;
      handle.key0 = key;
    } else {
      handle.view1 = view;
      handle.key1 = key;
    }
    return view;
  }
}

/** @internal */
export function checkValueSize(length: number): void {
  if (length > MAX_VALUE_SIZE) {
    throw new ShmError(
      "TOO_LARGE",
      `a value may hold at most ${MAX_VALUE_SIZE} bytes, not ${length}`,
    );
  }
}

function notFound(name: string): ShmError {
  return new ShmError("NOT_FOUND", `no variable named ${name}`);
}
