/**
 * Internal: the heap allocator of a service file. Only the owner allocates,
 * so its state lives in the owner's memory and is rebuilt from the live
 * blocks each time the owner opens the file (a crash can therefore never
 * leave it inconsistent). Blocks are powers of two, aligned to their size
 * relative to the heap start (a binary buddy system: freed buddies merge).
 */
import { MIN_BLOCK } from "./layout.js";

const MIN_ORDER = Math.log2(MIN_BLOCK);

/** A block in use: where it starts and how many bytes it spans. */
export interface UsedBlock {
  offset: number;
  size: number;
}

/** The order (log2 of the block size) that holds `bytes`. */
export function blockOrder(bytes: number): number {
  if (bytes <= MIN_BLOCK) return MIN_ORDER;
  // Sizes stay below 2^32 (file offsets are u32).
  return 32 - Math.clz32(bytes - 1);
}

export class BlockAllocator {
  /** Free block offsets by order. */
  readonly #free: Set<number>[] = [];
  /** Everything at or above `top` (up to `end`) has never been handed out. */
  #top: number;
  #end: number;
  readonly #start: number;

  private constructor(start: number, end: number) {
    this.#start = start;
    this.#top = start;
    this.#end = end;
  }

  /** An allocator over [start, end) with nothing in use. */
  static empty(start: number, end: number): BlockAllocator {
    return new BlockAllocator(start, end);
  }

  /**
   * An allocator over [start, end) where `used` are taken; every gap between
   * them becomes free. Throws on overlapping or misaligned blocks.
   */
  static rebuild(start: number, end: number, used: readonly UsedBlock[]): BlockAllocator {
    const allocator = new BlockAllocator(start, end);
    const sorted = [...used].sort((a, b) => a.offset - b.offset);
    let cursor = start;
    for (const block of sorted) {
      if (!allocator.#isAlignedBlock(block.offset, block.size) || block.offset < cursor) {
        throw new RangeError(`block ${block.offset}+${block.size} overlaps or is misaligned`);
      }
      allocator.#freeRange(cursor, block.offset);
      cursor = block.offset + block.size;
    }
    if (cursor > end) throw new RangeError(`block ends at ${cursor}, past the heap end ${end}`);
    allocator.#top = cursor;
    return allocator;
  }

  /** Bytes not yet handed out at the top of the heap. */
  get untouched(): number {
    return this.#end - this.#top;
  }

  get end(): number {
    return this.#end;
  }

  /** Makes the heap larger (the file grew). */
  extend(newEnd: number): void {
    if (newEnd < this.#end) throw new RangeError("the heap cannot shrink");
    this.#end = newEnd;
  }

  /**
   * A block of at least `bytes`, or undefined when the heap has no room (the
   * caller grows the file and tries again). The caller zeroes it.
   */
  allocate(bytes: number): number | undefined {
    const order = blockOrder(bytes);
    const exact = this.#take(order);
    if (exact !== undefined) return exact;
    for (let larger = order + 1; larger < this.#free.length; larger++) {
      const block = this.#take(larger);
      if (block === undefined) continue;
      for (let split = larger - 1; split >= order; split--) this.#put(block + 2 ** split, split);
      return block;
    }
    return this.#bump(order);
  }

  /** Returns a block; it merges with its buddy when that one is free too. */
  free(offset: number, bytes: number): void {
    let order = blockOrder(bytes);
    let block = offset;
    for (;;) {
      // Arithmetic, not XOR: heap offsets may pass 2^31, where JS bit
      // operators would truncate them.
      const size = 2 ** order;
      const relative = block - this.#start;
      const buddy =
        this.#start + (relative % (2 * size) < size ? relative + size : relative - size);
      const set = this.#free[order];
      if (set === undefined || !set.delete(buddy)) break;
      block = Math.min(block, buddy);
      order++;
    }
    this.#put(block, order);
  }

  /** How many bytes a block needs to hold `bytes`. */
  static blockSize(bytes: number): number {
    return 2 ** blockOrder(bytes);
  }

  /** Free blocks, for tests and diagnostics. */
  freeBlocks(): UsedBlock[] {
    const blocks: UsedBlock[] = [];
    this.#free.forEach((set, order) => {
      for (const offset of set) blocks.push({ offset, size: 2 ** order });
    });
    return blocks.sort((a, b) => a.offset - b.offset);
  }

  get top(): number {
    return this.#top;
  }

  #bump(order: number): number | undefined {
    const size = 2 ** order;
    const relative = this.#top - this.#start;
    const aligned = this.#start + Math.ceil(relative / size) * size;
    if (aligned + size > this.#end) return undefined;
    this.#freeRange(this.#top, aligned);
    this.#top = aligned + size;
    return aligned;
  }

  #take(order: number): number | undefined {
    const set = this.#free[order];
    if (set === undefined || set.size === 0) return undefined;
    for (const block of set) {
      set.delete(block);
      return block;
    }
    return undefined;
  }

  #put(block: number, order: number): void {
    while (this.#free.length <= order) this.#free.push(new Set());
    (this.#free[order] as Set<number>).add(block);
  }

  /**
   * Splits [from, to) into the largest aligned blocks and frees them, merging
   * with free buddies below (a bump's alignment gap can sit next to one).
   */
  #freeRange(from: number, to: number): void {
    let cursor = from;
    while (cursor < to) {
      let order = MIN_ORDER;
      while (this.#isAlignedBlock(cursor, 2 ** (order + 1)) && cursor + 2 ** (order + 1) <= to) {
        order++;
      }
      this.free(cursor, 2 ** order);
      cursor += 2 ** order;
    }
  }

  #isAlignedBlock(offset: number, size: number): boolean {
    return size >= MIN_BLOCK && (offset - this.#start) % size === 0 && offset >= this.#start;
  }
}
