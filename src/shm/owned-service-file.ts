/**
 * The owner's side of a service file (the server): it alone creates,
 * deletes and relocates variables, grows the file and keeps the allocator.
 * Values are still written the same way as by any local process.
 */
import { closeSync, ftruncateSync, openSync, unlinkSync } from "node:fs";
import { BlockAllocator, type UsedBlock } from "./block-allocator.js";
import {
  ChangeKind,
  DEFAULT_INITIAL_SIZE,
  DEFAULT_MAX_SIZE,
  DEFAULT_RING_CAPACITY,
  FORMAT_VERSION,
  HEADER_SIZE,
  Header,
  INITIAL_INDEX_CAPACITY,
  Index,
  LIMIT_MAX_SIZE,
  MAGIC,
  MAX_VALUE_SIZE,
  PAGE_SIZE,
  Record,
  RecordState,
  RingEntry,
  Slot,
  hashName,
  hashValidName,
  nextPowerOfTwo,
} from "./layout.js";
import {
  type Mapping,
  mapExisting,
  mapFd,
  mapNewFilesInBackground,
  unmap,
  unmapAndUnlinkInBackground,
} from "./mapping.js";
import { native } from "./native.js";
import {
  ServiceFile,
  type VariableHandle,
  type VariableInfo,
  checkValueSize,
} from "./service-file.js";
import { ShmError } from "./shm-error.js";
import { isProcessAlive } from "./process-liveness.js";
import { describeInvalidName, isValidName } from "../core/names.js";

const W = (byteOffset: number): number => byteOffset >>> 2;
const GENERATION = W(Header.GENERATION);
const VARIABLE_COUNT = W(Header.VARIABLE_COUNT);
const MIN_CAPACITY = 16;
/**
 * Heap bytes above the allocator's top that a native background thread
 * keeps faulted in. The first touch of fresh file pages (page-cache
 * allocation, zeroing, a block reservation) cost allocate() ~0.5 µs of its
 * ~2.5 µs for 64-byte values and ~1 ms per MiB for large ones. 32 MiB stays
 * ahead of a burst of 1 MiB values; it never reaches past the file's size.
 * Costs: up to that much page cache and disk for zeros written early.
 */
const PREFAULT_AHEAD = 32 * 1024 * 1024;
/**
 * Index slots copied per allocation while a larger index is built. From 3/8
 * to 1/2 full there are capacity/8 allocations to copy every slot: 32 a
 * time finishes in a quarter of that, and costs about 1 µs.
 */
const INDEX_MIGRATION_STEP = 32;
/** Heap bytes a new file uses at once: the first index block, and a page for the first variables. */
const FIRST_HEAP_BYTES = roundUp(Index.SLOTS + INITIAL_INDEX_CAPACITY * 4, PAGE_SIZE) + PAGE_SIZE;
/** Zeros to copy from: filling shared memory goes byte by byte (~0.35 ns/B), a copy does not. */
const ZEROS = new Uint8Array(64 * 1024);

/** How a new service file is laid out. */
export interface CreateServiceFileOptions {
  /** Written into the header so that the file says whose it is (≤ 64 ASCII chars). */
  serviceId: string;
  /** Bytes the file starts with (default 256 KiB). */
  initialSize?: number;
  /** Bytes the file may grow to; every process reserves this much address space (default 1 GiB). */
  maxSize?: number;
  /** File mode (default 0o600: only the server's user). */
  mode?: number;
  /** Entries in the change ring, a power of two (default 4096). */
  ringCapacity?: number;
}

/** Options of `allocate()`. */
export interface AllocateOptions {
  /** Bytes the variable can hold in place before it must be relocated. */
  capacity?: number;
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/** Where things go in a new file, from its options (checked). */
interface NewFileLayout {
  maxSize: number;
  initialSize: number;
  ringCapacity: number;
  heapOffset: number;
  mode: number;
}

function newFileLayout(options: Omit<CreateServiceFileOptions, "serviceId">): NewFileLayout {
  const maxSize = options.maxSize ?? DEFAULT_MAX_SIZE;
  const ringCapacity = options.ringCapacity ?? DEFAULT_RING_CAPACITY;
  const heapOffset = roundUp(HEADER_SIZE + ringCapacity * RingEntry.SIZE, PAGE_SIZE);
  const initialSize = Math.max(
    roundUp(options.initialSize ?? DEFAULT_INITIAL_SIZE, PAGE_SIZE),
    heapOffset + PAGE_SIZE * 4,
  );
  if (ringCapacity < 16 || (ringCapacity & (ringCapacity - 1)) !== 0) {
    throw new ShmError("INVALID", "the change ring's capacity must be a power of two ≥ 16");
  }
  if (maxSize > LIMIT_MAX_SIZE || maxSize < initialSize || maxSize % 4 !== 0) {
    throw new ShmError(
      "INVALID",
      `the maximum size must be a multiple of 4 between ${initialSize} and ${LIMIT_MAX_SIZE}`,
    );
  }
  return { maxSize, initialSize, ringCapacity, heapOffset, mode: options.mode ?? 0o600 };
}

function checkServiceId(serviceId: string): void {
  if (!/^[\x20-\x7e]{0,64}$/.test(serviceId)) {
    throw new ShmError("INVALID", "a service id is at most 64 printable ASCII characters");
  }
}

/** Opens a file that must not exist yet; EXISTS when it does. */
function openNew(path: string, open: () => number): number {
  try {
    return open();
  } catch (error) {
    throw existsError(path, error);
  }
}

function existsError(path: string, error: unknown): unknown {
  return (error as NodeJS.ErrnoException).code === "EEXIST"
    ? new ShmError("EXISTS", `a file exists at ${path}`)
    : error;
}

export class OwnedServiceFile extends ServiceFile {
  #allocator: BlockAllocator;
  /**
   * Live variables. The owner finds names through the file's own index, as
   * every process does: a Map of every name cost a third of allocate() and
   * rehashed all of them whenever its size passed a power of two (8–14 ms
   * at 65,536 and 131,072 variables).
   */
  #count = 0;
  /**
   * Free heap space at or above this offset is known to be zero: the file
   * was created or grown (ftruncate zero-fills) and every freed block is
   * zeroed at once. Space that was free when an existing file was opened
   * is not trusted (a crash may have left bytes in it) and is zeroed when
   * handed out.
   */
  #cleanFrom: number;
  /** Heap below this offset has been handed to the prefault thread (see PREFAULT_AHEAD). */
  #prefaultedTo: number;
  /** A larger name index being filled, not yet visible to readers (see #migrateIndex). */
  #nextIndex: { index: number; capacity: number; scanned: number } | undefined;
  /** Freed records, kept for records (see #allocateRecord). */
  readonly #freeRecords: number[] = [];
  readonly #maxSize: number;
  /** What opening had to mend, for the server's log. */
  readonly repairs: string[] = [];

  /** Told the new size each time the file grows (the server counts growths). */
  onGrow: ((newSize: number) => void) | undefined;

  private constructor(mapping: Mapping, allocator: BlockAllocator) {
    super(mapping);
    this.lockPatienceMs = 0;
    this.#allocator = allocator;
    this.#cleanFrom = this.size;
    this.#prefaultedTo = allocator.top;
    this.#maxSize = this.u32[W(Header.MAX_SIZE)] as number;
  }

  /** Creates a new, empty service file; EXISTS if the path is taken. */
  static create(path: string, options: CreateServiceFileOptions): OwnedServiceFile {
    const layout = newFileLayout(options);
    const fd = openNew(path, () => openSync(path, "wx+", layout.mode));
    try {
      ftruncateSync(fd, layout.initialSize);
      checkServiceId(options.serviceId);
      return OwnedServiceFile.#initialize(
        mapFd(path, fd, layout.maxSize, true),
        layout,
        options.serviceId,
      );
    } catch (error) {
      closeSync(fd);
      unlinkSync(path);
      throw error;
    }
  }

  /**
   * `create()` for several new files at once, with the costly system calls
   * in one job on libuv's threadpool: open, a first write of the pages a
   * new file needs at once (header, change ring, index and the heap's first
   * page), size, and the mapping. The first write is what the kernel makes
   * expensive: the first touch of a page of a new file through the mapping
   * fills the page cache (ext4: ~70 µs for the first page, read-ahead
   * included). The calling thread only writes the header and index into
   * pages already there. One result per file: the file, or why it could
   * not be made (EXISTS when the path is taken).
   */
  static async createInBackground(
    files: readonly { path: string; serviceId: string }[],
    options: Omit<CreateServiceFileOptions, "serviceId"> = {},
  ): Promise<(OwnedServiceFile | Error)[]> {
    const layout = newFileLayout(options);
    for (const { serviceId } of files) checkServiceId(serviceId);
    const mappings = await mapNewFilesInBackground(
      files.map((file) => file.path),
      {
        zeroBytes: layout.heapOffset + FIRST_HEAP_BYTES,
        size: layout.initialSize,
        mode: layout.mode,
        length: layout.maxSize,
      },
    );
    return files.map(({ serviceId }, i) => {
      const mapping = mappings[i] ?? new Error("no result for this file");
      if (mapping instanceof Error) return mapping;
      try {
        return OwnedServiceFile.#initialize(mapping, layout, serviceId);
      } catch (error) {
        void unmapAndUnlinkInBackground([mapping]);
        return error instanceof Error ? error : new Error(String(error));
      }
    });
  }

  /** Makes a new mapped file of `layout.initialSize` zeros an empty, ready service file. */
  static #initialize(mapping: Mapping, layout: NewFileLayout, serviceId: string): OwnedServiceFile {
    const { maxSize, initialSize, ringCapacity, heapOffset } = layout;
    const view = new DataView(mapping.buffer);
    mapping.u8.set(MAGIC, Header.MAGIC);
    view.setUint32(Header.FORMAT_VERSION, FORMAT_VERSION, true);
    view.setUint32(Header.HEADER_SIZE, HEADER_SIZE, true);
    view.setUint32(Header.SIZE, initialSize, true);
    view.setUint32(Header.MAX_SIZE, maxSize, true);
    view.setUint32(Header.RING_OFFSET, HEADER_SIZE, true);
    view.setUint32(Header.RING_CAPACITY, ringCapacity, true);
    view.setUint32(Header.HEAP_OFFSET, heapOffset, true);
    view.setUint32(Header.OWNER_PID, process.pid, true);
    mapping.u8.set(Buffer.from(serviceId, "latin1"), Header.SERVICE_ID);
    const file = new OwnedServiceFile(mapping, BlockAllocator.empty(heapOffset, initialSize));
    file.#cleanFrom = heapOffset; // a new file is all zeros
    file.#installIndex(INITIAL_INDEX_CAPACITY, []);
    // No prefault yet: the first allocate() asks for it. A service that
    // never gets a variable (or a spare never taken) costs no heap pages.
    Atomics.store(mapping.u32, W(Header.READY), 1);
    return file;
  }

  /**
   * Opens a file this process will own: checks every record, drops what is
   * broken, clears write locks of dead processes and rebuilds the allocator.
   */
  static openOwned(path: string): OwnedServiceFile {
    const { mapping, facts } = mapExisting(path, true);
    if (!facts.ready) {
      unmap(mapping);
      throw new ShmError("CORRUPT", `${path} is not initialised (its ready flag is unset)`);
    }
    const file = new OwnedServiceFile(mapping, BlockAllocator.empty(facts.heapOffset, facts.size));
    try {
      file.#repair(facts.heapOffset, facts.size);
      file.#prefaultedTo = file.#allocator.top;
    } catch (error) {
      file.close();
      if (error instanceof ShmError) throw error;
      throw new ShmError("CORRUPT", `${path} is corrupt: ${(error as Error).message}`);
    }
    Atomics.store(mapping.u32, W(Header.OWNER_PID), process.pid);
    return file;
  }

  /** Creates a variable at version 1 holding `initial`. */
  allocate(name: string, initial: Uint8Array, options: AllocateOptions = {}): VariableInfo {
    this.assertWritable();
    const hash = hashValidName(name);
    if (hash < 0) {
      throw new ShmError("INVALID", describeInvalidName("variable", name) ?? "invalid name");
    }
    const wanted = options.capacity ?? 0;
    checkValueSize(initial.length);
    checkValueSize(wanted);
    if (this.findRecord(name, hash) !== 0) {
      throw new ShmError("EXISTS", `a variable named ${name} exists`);
    }
    const capacity = nextPowerOfTwo(Math.max(MIN_CAPACITY, initial.length, wanted));
    this.#ensureIndexRoom();
    const record = this.#allocateRecord();
    let block: number;
    try {
      block = this.#allocateBlock(capacity * 2);
    } catch (error) {
      // FULL: give the record back, or every failed allocate leaks 256 bytes.
      this.#freeRecord(record);
      throw error;
    }
    const u32 = this.u32;
    const u8 = this.u8;
    // Only the owner moves GENERATION: one store at the end stands for the
    // two steps (a fresh incarnation, then the new structure).
    const generation = u32[GENERATION] as number;
    const incarnation = (generation + 1) >>> 0;
    u32[W(record + Record.NAME_LENGTH)] = name.length;
    u32[W(record + Record.NAME_HASH)] = hash;
    for (let i = 0; i < name.length; i++) u8[record + Record.NAME + i] = name.charCodeAt(i);
    this.#setSlot(record + Record.SLOT0, block, capacity, initial.length, 1);
    this.#setSlot(record + Record.SLOT1, block + capacity, capacity, 0, 0);
    if (initial.length > 0) u8.set(initial, block);
    Atomics.store(u32, W(record + Record.INCARNATION), incarnation);
    Atomics.store(u32, W(record + Record.STATE), RecordState.LIVE);
    this.#indexInsert(record, hash);
    this.#count++;
    u32[VARIABLE_COUNT] = ((u32[VARIABLE_COUNT] as number) + 1) >>> 0;
    Atomics.store(u32, GENERATION, (generation + 2) >>> 0);
    this.announce(record, incarnation, ChangeKind.CREATE);
    this.#prefaultAhead();
    return { name, version: 1, size: initial.length, capacity };
  }

  /** Deletes a variable; its space is zeroed and reused. */
  deallocate(name: string): void {
    this.assertWritable();
    const hash = hashValidName(name);
    const record = hash < 0 ? 0 : this.findRecord(name, hash);
    if (record === 0) throw new ShmError("NOT_FOUND", `no variable named ${name}`);
    const u32 = this.u32;
    this.lockRecord(record);
    const incarnation = Atomics.load(u32, W(record + Record.INCARNATION));
    Atomics.store(u32, W(record + Record.STATE), RecordState.DELETED);
    this.#indexRemove(record, u32[W(record + Record.NAME_HASH)] as number);
    this.#count--;
    u32[VARIABLE_COUNT] = ((u32[VARIABLE_COUNT] as number) - 1) >>> 0;
    Atomics.add(u32, GENERATION, 1);
    this.announce(record, incarnation, ChangeKind.DELETE);
    const { block, capacity } = this.#currentBlock(record);
    this.#freeBlock(block, capacity * 2);
    this.#freeRecord(record);
  }

  /** Names of every live variable, sorted. */
  names(): string[] {
    this.assertOpen();
    const names: string[] = [];
    this.forEachRecord((record) => names.push(this.recordName(record)));
    return names.sort();
  }

  get variableCount(): number {
    return this.#count;
  }

  /**
   * Marks the service deleted in the header and wakes every process that
   * waits on it, so that local mappers let go. The caller then unlinks it.
   */
  markDeleted(): void {
    this.assertOpen();
    Atomics.store(this.u32, W(Header.DELETED), 1);
    this.announce(0, 0, ChangeKind.DELETE);
    this.wakeWaiters();
  }

  /**
   * @internal The owner's own writes wake only other processes' sleepers;
   * its own watcher reads the ring right after each of them anyway.
   */
  protected override othersWaiting(): boolean {
    return (this.u32[W(Header.WAITERS)] as number) !== 0;
  }

  /** @internal The owner's sleepers register apart (see Header.OWNER_WAITERS). */
  protected override get waitersField(): number {
    return Header.OWNER_WAITERS;
  }

  /** @internal Relocates a value that outgrew its capacity. */
  protected override writeBeyondCapacity(
    handle: VariableHandle,
    data: Uint8Array,
    version: number,
  ): number {
    const u32 = this.u32;
    const record = handle.record;
    const capacity = nextPowerOfTwo(Math.max(MIN_CAPACITY, data.length));
    const old = this.#currentBlock(record);
    const block = this.#allocateBlock(capacity * 2);
    const ctlIndex = W(record + Record.CTL);
    const ctl = Atomics.load(u32, ctlIndex);
    const current = ctl & 1;
    const next = current ^ 1;
    this.u8.set(data, block + next * capacity);
    this.#setSlot(
      record + (next ? Record.SLOT1 : Record.SLOT0),
      block + next * capacity,
      capacity,
      data.length,
      version + 1,
    );
    Atomics.store(u32, ctlIndex, (ctl + 1) >>> 0);
    // The slot that just became inactive moves into the new block too.
    const inactive = record + (current ? Record.SLOT1 : Record.SLOT0);
    u32[W(inactive + Slot.OFFSET)] = block + current * capacity;
    u32[W(inactive + Slot.CAPACITY)] = capacity;
    Atomics.add(u32, GENERATION, 1);
    this.#freeBlock(old.block, old.capacity * 2);
    handle.version = version + 1;
    this.announce(record, handle.incarnation, ChangeKind.WRITE);
    this.#prefaultAhead();
    return version + 1;
  }

  #setSlot(slot: number, offset: number, capacity: number, length: number, version: number): void {
    const u32 = this.u32;
    u32[W(slot + Slot.OFFSET)] = offset;
    u32[W(slot + Slot.CAPACITY)] = capacity;
    u32[W(slot + Slot.LENGTH)] = length;
    u32[W(slot + Slot.VERSION_LO)] = version >>> 0; // ToUint32 is modulo 2^32
    u32[W(slot + Slot.VERSION_HI)] = Math.floor(version / 2 ** 32);
  }

  /** The block holding both slots: derived from the current slot. */
  #currentBlock(record: number): { block: number; capacity: number } {
    const ctl = Atomics.load(this.u32, W(record + Record.CTL));
    const current = ctl & 1;
    const slot = record + (current ? Record.SLOT1 : Record.SLOT0);
    const capacity = this.u32[W(slot + Slot.CAPACITY)] as number;
    return { block: (this.u32[W(slot + Slot.OFFSET)] as number) - current * capacity, capacity };
  }

  /**
   * Records come from their own pool and only ever hold records: a local
   * writer with a stale handle may still compare-and-swap a record's LOCK
   * word after the variable was deleted, which must never land in a value.
   */
  #allocateRecord(): number {
    const reused = this.#freeRecords.pop();
    if (reused === undefined) return this.#allocateBlock(Record.SIZE);
    this.#zero(reused, Record.SIZE);
    return reused;
  }

  #freeRecord(record: number): void {
    this.#zero(record, Record.SIZE);
    this.#freeRecords.push(record);
  }

  #allocateBlock(bytes: number): number {
    let block = this.#allocator.allocate(bytes);
    if (block === undefined) {
      this.#grow(bytes);
      block = this.#allocator.allocate(bytes);
    }
    if (block === undefined && this.#freeRecords.length > 0) {
      // Out of room: pooled records go back to the heap after all (the
      // stale-handle race they guard against is far less likely than a
      // full file is costly).
      for (const record of this.#freeRecords.splice(0)) this.#allocator.free(record, Record.SIZE);
      block = this.#allocator.allocate(bytes);
    }
    if (block === undefined) {
      throw new ShmError(
        "FULL",
        `${this.path} has reached its maximum size of ${this.#maxSize} bytes`,
      );
    }
    // Fresh file space is zero already: touching it would only fault its
    // pages in early (the cost that dominates growing to large sizes).
    if (block < this.#cleanFrom) this.#zero(block, BlockAllocator.blockSize(bytes));
    return block;
  }

  #freeBlock(block: number, bytes: number): void {
    this.#zero(block, BlockAllocator.blockSize(bytes));
    this.#allocator.free(block, bytes);
  }

  #zero(offset: number, bytes: number): void {
    for (let done = 0; done < bytes; done += ZEROS.length) {
      this.u8.set(ZEROS.subarray(0, Math.min(ZEROS.length, bytes - done)), offset + done);
    }
  }

  /** Doubles the file (or more, for a large block) up to its maximum. */
  #grow(bytes: number): void {
    const size = this.size;
    const wanted = Math.max(size * 2, this.#allocator.top + BlockAllocator.blockSize(bytes) * 2);
    const newSize = Math.min(this.#maxSize, roundUp(wanted, PAGE_SIZE));
    if (newSize <= size) return;
    ftruncateSync(this.map.fd, newSize);
    this.#cleanFrom = Math.min(this.#cleanFrom, size);
    this.#allocator.extend(newSize);
    Atomics.store(this.u32, W(Header.SIZE), newSize);
    Atomics.add(this.u32, GENERATION, 1);
    this.onGrow?.(newSize);
  }

  /**
   * Keeps the next PREFAULT_AHEAD bytes above the allocator's top faulted
   * in by the native background thread, and grows the file a step early
   * (once it is half used) so that there is room to do so before
   * allocate() needs it.
   */
  #prefaultAhead(): void {
    const top = this.#allocator.top;
    if (top + PREFAULT_AHEAD / 2 < this.#prefaultedTo) return;
    const end = this.#allocator.end;
    if (top + PREFAULT_AHEAD > end && top * 2 > end && end < this.#maxSize) {
      try {
        this.#grow(0);
      } catch {
        // Early growth is a hint; the allocation that needs it will report why it fails.
      }
    }
    const to = Math.min(this.#allocator.end, top + PREFAULT_AHEAD);
    if (to <= this.#prefaultedTo) return;
    native.prefault(this.map.buffer, this.#prefaultedTo, to - this.#prefaultedTo);
    this.#prefaultedTo = to;
  }

  // ---- the name index ----

  #indexBlock(): { index: number; capacity: number } {
    const index = Atomics.load(this.u32, W(Header.INDEX_OFFSET));
    return { index, capacity: this.u32[W(index + Index.CAPACITY)] as number };
  }

  /**
   * Makes room for one more entry. The index is kept at most half full; it
   * is rebuilt into a larger block a few slots per allocation from 3/8 full
   * on (see #migrateIndex), so no single allocate() rehashes every record
   * (that was 6 ms at 32,768 variables and 30 ms at 131,072).
   */
  #ensureIndexRoom(): void {
    const { index, capacity } = this.#indexBlock();
    const live = this.u32[W(index + Index.LIVE)] as number;
    const used = live + (this.u32[W(index + Index.TOMBSTONES)] as number) + 1;
    if (this.#nextIndex === undefined) {
      if (used * 8 <= capacity * 3) return;
      const next = Math.max(INITIAL_INDEX_CAPACITY, nextPowerOfTwo((live + 1) * 4));
      const block = this.#allocateBlock(Index.SLOTS + next * 4);
      this.u32[W(block + Index.CAPACITY)] = next;
      this.#nextIndex = { index: block, capacity: next, scanned: 0 };
    }
    // Past half full the rest is migrated at once (reached only when deletes
    // leave tombstones faster than the migration's pace).
    this.#migrateIndex(used * 2 > capacity ? capacity : INDEX_MIGRATION_STEP);
  }

  /**
   * Copies the next `slots` slots of the current index into the one being
   * built, and switches readers to it once every slot is copied. Until then
   * creates and deletes update both (#indexInsert, #indexRemove), so the new
   * index is complete when it is published.
   */
  #migrateIndex(slots: number): void {
    const next = this.#nextIndex;
    if (next === undefined) return;
    const u32 = this.u32;
    const { index, capacity } = this.#indexBlock();
    const from = W(index + Index.SLOTS);
    const end = Math.min(capacity, next.scanned + slots);
    for (let i = next.scanned; i < end; i++) {
      const record = u32[from + i] as number;
      if (record <= Index.TOMBSTONE) continue;
      this.#slotInsert(
        next.index,
        next.capacity,
        record,
        u32[W(record + Record.NAME_HASH)] as number,
      );
    }
    next.scanned = end;
    if (end < capacity) return;
    this.#nextIndex = undefined;
    Atomics.store(u32, W(Header.INDEX_OFFSET), next.index);
    Atomics.add(u32, GENERATION, 1);
    this.#freeBlock(index, Index.SLOTS + capacity * 4);
  }

  /** Builds a new index of `capacity` slots holding `records` and switches to it. */
  #installIndex(capacity: number, records: readonly number[]): void {
    const index = this.#allocateBlock(Index.SLOTS + capacity * 4);
    const u32 = this.u32;
    u32[W(index + Index.CAPACITY)] = capacity;
    const slots = W(index + Index.SLOTS);
    const mask = capacity - 1;
    for (const record of records) {
      let i = (u32[W(record + Record.NAME_HASH)] as number) & mask;
      while (u32[slots + i] !== Index.EMPTY) i = (i + 1) & mask;
      u32[slots + i] = record;
    }
    u32[W(index + Index.LIVE)] = records.length;
    Atomics.store(u32, W(Header.INDEX_OFFSET), index);
    Atomics.add(u32, GENERATION, 1);
  }

  #addToIndexCount(field: number, delta: number): void {
    this.u32[W(field)] = ((this.u32[W(field)] as number) + delta) >>> 0;
  }

  #indexInsert(record: number, hash: number): void {
    const { index, capacity } = this.#indexBlock();
    this.#slotInsert(index, capacity, record, hash);
    const next = this.#nextIndex;
    if (next !== undefined) this.#slotInsert(next.index, next.capacity, record, hash);
  }

  #indexRemove(record: number, hash: number): void {
    const { index, capacity } = this.#indexBlock();
    this.#slotRemove(index, capacity, record, hash);
    const next = this.#nextIndex;
    if (next !== undefined) this.#slotRemove(next.index, next.capacity, record, hash);
  }

  /** Puts `record` into the index block at `index`, unless it is there already. */
  #slotInsert(index: number, capacity: number, record: number, hash: number): void {
    const u32 = this.u32;
    const slots = W(index + Index.SLOTS);
    const mask = capacity - 1;
    let free = -1;
    for (let probe = 0, i = hash & mask; probe < capacity; probe++, i = (i + 1) & mask) {
      const slot = u32[slots + i] as number;
      if (slot === record) return;
      if (slot === Index.TOMBSTONE && free < 0) free = i;
      if (slot !== Index.EMPTY) continue;
      if (free < 0) free = i;
      break;
    }
    if (free < 0) throw new Error(`internal: the name index at ${index} is full`);
    if (u32[slots + free] === Index.TOMBSTONE) this.#addToIndexCount(index + Index.TOMBSTONES, -1);
    this.#addToIndexCount(index + Index.LIVE, 1);
    Atomics.store(u32, slots + free, record);
  }

  #slotRemove(index: number, capacity: number, record: number, hash: number): void {
    const u32 = this.u32;
    const slots = W(index + Index.SLOTS);
    const mask = capacity - 1;
    for (let probe = 0, i = hash & mask; probe < capacity; probe++, i = (i + 1) & mask) {
      if (u32[slots + i] === Index.EMPTY) return;
      if (u32[slots + i] !== record) continue;
      Atomics.store(u32, slots + i, Index.TOMBSTONE);
      this.#addToIndexCount(index + Index.LIVE, -1);
      this.#addToIndexCount(index + Index.TOMBSTONES, 1);
      return;
    }
  }

  // ---- opening an existing file ----

  #repair(heapOffset: number, size: number): void {
    const index = Atomics.load(this.u32, W(Header.INDEX_OFFSET));
    const capacity = this.indexCapacity(index);
    if (capacity === 0) throw new ShmError("CORRUPT", `${this.path} is corrupt: bad name index`);
    const used: UsedBlock[] = [
      { offset: index, size: BlockAllocator.blockSize(Index.SLOTS + capacity * 4) },
    ];
    const slots = W(index + Index.SLOTS);
    const names = new Set<string>();
    const records: number[] = [];
    let dropped = 0;
    for (let i = 0; i < capacity; i++) {
      const record = this.u32[slots + i] as number;
      if (record <= Index.TOMBSTONE) continue;
      const value = this.#checkRecord(record, heapOffset, size, names);
      if (value === undefined) {
        dropped++;
        continue;
      }
      names.add(this.recordName(record));
      records.push(record);
      used.push(
        { offset: record, size: Record.SIZE },
        { offset: value.block, size: value.capacity * 2 },
      );
    }
    this.#allocator = BlockAllocator.rebuild(heapOffset, size, used);
    if (dropped > 0) this.repairs.push(`dropped ${dropped} broken variable record(s)`);
    // A fresh index leaves out dropped records and tombstones.
    this.#installIndex(
      Math.max(INITIAL_INDEX_CAPACITY, nextPowerOfTwo((records.length + 1) * 4)),
      records,
    );
    this.#freeBlock(index, Index.SLOTS + capacity * 4);
    this.#count = records.length;
    Atomics.store(this.u32, W(Header.VARIABLE_COUNT), records.length);
  }

  /** Checks one record; mends its inactive slot and a dead writer's lock. */
  #checkRecord(
    record: number,
    heapOffset: number,
    size: number,
    seen: ReadonlySet<string>,
  ): { block: number; capacity: number } | undefined {
    const u32 = this.u32;
    const inHeap = (offset: number, bytes: number): boolean =>
      offset >= heapOffset && offset + bytes <= size && (offset - heapOffset) % bytes === 0;
    if (!inHeap(record, Record.SIZE)) return undefined;
    if (Atomics.load(u32, W(record + Record.STATE)) !== RecordState.LIVE) return undefined;
    const name = this.recordName(record);
    if (!isValidName(name) || hashName(name) !== u32[W(record + Record.NAME_HASH)])
      return undefined;
    if (seen.has(name)) return undefined;
    const { block, capacity } = this.#currentBlock(record);
    const current = Atomics.load(u32, W(record + Record.CTL)) & 1;
    const currentSlot = record + (current ? Record.SLOT1 : Record.SLOT0);
    if (
      capacity < MIN_CAPACITY ||
      capacity > MAX_VALUE_SIZE ||
      (capacity & (capacity - 1)) !== 0 ||
      !inHeap(block, capacity * 2) ||
      (u32[W(currentSlot + Slot.LENGTH)] as number) > capacity
    ) {
      return undefined;
    }
    const inactive = record + (current ? Record.SLOT0 : Record.SLOT1);
    u32[W(inactive + Slot.OFFSET)] = block + (current ^ 1) * capacity;
    u32[W(inactive + Slot.CAPACITY)] = capacity;
    const holder = Atomics.load(u32, W(record + Record.LOCK));
    if (holder !== 0 && !isProcessAlive(holder)) {
      Atomics.store(u32, W(record + Record.LOCK), 0);
      this.repairs.push(`released ${name}, locked by dead process ${holder}`);
    }
    return { block, capacity };
  }
}
