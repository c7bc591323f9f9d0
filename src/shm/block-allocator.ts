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

/** Orders of blocks a heap below 4 GiB can hold (2^31 at most). */
const ORDERS = 32;
/**
 * 2^order by table: heap offsets pass 2^31, beyond JS's 32-bit operators,
 * and `2 ** order` and `%` on such numbers compile to calls (they were half
 * of allocate()'s time).
 */
const SIZE_OF_ORDER = Array.from({ length: ORDERS + 1 }, (_, order) => 2 ** order);

/** The largest power of two dividing `n` (0 < n < 2^32). */
function alignmentOf(n: number): number {
  const low = n >>> 0;
  return (low & -low) >>> 0;
}

/** The largest power of two ≤ `n` (0 < n < 2^32). */
function floorPowerOfTwo(n: number): number {
  return SIZE_OF_ORDER[31 - Math.clz32(n >>> 0)] as number;
}

export class BlockAllocator {
  /** Free block offsets by order: membership, so that a buddy can be taken out of its list. */
  readonly #free: Set<number>[] = Array.from({ length: ORDERS }, () => new Set<number>());
  /**
   * The same offsets as stacks, so that handing one out needs no iterator
   * (a Set's iteration is what allocate() spent most of its time in). A
   * buddy taken out by a merge stays behind as a stale entry that #take
   * skips; every member of #free[order] is somewhere in #stacks[order].
   */
  readonly #stacks: number[][] = Array.from({ length: ORDERS }, () => []);
  /** Bit `order` is set while #free[order] is not empty. */
  #nonEmpty = 0;
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
    // The smallest order ≥ `order` with a free block (lowest set bit).
    const candidates = order < ORDERS ? (this.#nonEmpty >>> order) << order : 0;
    if (candidates === 0) return this.#bump(order);
    const larger = 31 - Math.clz32(candidates & -candidates);
    const block = this.#take(larger);
    for (let split = larger - 1; split >= order; split--) {
      this.#put(block + (SIZE_OF_ORDER[split] as number), split);
    }
    return block;
  }

  /** Returns a block; it merges with its buddy when that one is free too. */
  free(offset: number, bytes: number): void {
    let order = blockOrder(bytes);
    let block = offset;
    for (;;) {
      // Arithmetic, not XOR: heap offsets may pass 2^31, where JS bit
      // operators would truncate them.
      const size = SIZE_OF_ORDER[order] as number;
      const relative = block - this.#start;
      // relative / size is a whole number below 2^27: its low bit says which buddy this is.
      const buddy = this.#start + ((relative / size) & 1 ? relative - size : relative + size);
      const set = this.#free[order];
      if (set === undefined || !set.delete(buddy)) break;
      if (set.size === 0) this.#nonEmpty &= ~(1 << order);
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
      for (const offset of set) blocks.push({ offset, size: SIZE_OF_ORDER[order] as number });
    });
    return blocks.sort((a, b) => a.offset - b.offset);
  }

  get top(): number {
    return this.#top;
  }

  #bump(order: number): number | undefined {
    const size = SIZE_OF_ORDER[order] as number;
    const relative = this.#top - this.#start;
    const aligned = this.#start + Math.ceil(relative / size) * size;
    if (aligned + size > this.#end) return undefined;
    this.#freeRange(this.#top, aligned);
    this.#top = aligned + size;
    return aligned;
  }

  /** A free block of `order`; the caller has checked that there is one. */
  #take(order: number): number {
    const set = this.#free[order] as Set<number>;
    const stack = this.#stacks[order] as number[];
    for (;;) {
      const block = stack.pop() as number;
      if (!set.delete(block)) continue; // stale: merged away since it was pushed
      if (set.size === 0) this.#nonEmpty &= ~(1 << order);
      return block;
    }
  }

  #put(block: number, order: number): void {
    const set = this.#free[order] as Set<number>;
    const stack = this.#stacks[order] as number[];
    set.add(block);
    stack.push(block);
    this.#nonEmpty |= 1 << order;
    // Stale entries pile up under merge-heavy churn: drop them now and then.
    if (stack.length > 2 * set.size + 64) this.#stacks[order] = [...set];
  }

  /**
   * Splits [from, to) into the largest aligned blocks and frees them, merging
   * with free buddies below (a bump's alignment gap can sit next to one).
   */
  #freeRange(from: number, to: number): void {
    let cursor = from;
    while (cursor < to) {
      const relative = cursor - this.#start;
      const fits = floorPowerOfTwo(to - cursor);
      const size = Math.max(
        MIN_BLOCK,
        relative === 0 ? fits : Math.min(alignmentOf(relative), fits),
      );
      this.free(cursor, size);
      cursor += size;
    }
  }

  #isAlignedBlock(offset: number, size: number): boolean {
    const blocks = (offset - this.#start) / size;
    return size >= MIN_BLOCK && offset >= this.#start && Math.floor(blocks) === blocks;
  }
}
