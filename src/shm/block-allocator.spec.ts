import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BlockAllocator, type UsedBlock, blockOrder } from "./block-allocator.js";
import { MIN_BLOCK } from "./layout.js";

/** What the model remembers of a block it was handed. */
interface Live extends UsedBlock {
  requested: number;
}

/** Checks every invariant of an allocator against the blocks the model holds. */
function checkInvariants(allocator: BlockAllocator, start: number, live: readonly Live[]): void {
  const end = allocator.end;
  const free = allocator.freeBlocks();
  for (const block of live) {
    // Power of two, big enough, aligned to its size relative to the heap start, inside the heap.
    expect(block.size).toBe(BlockAllocator.blockSize(block.requested));
    expect(block.size).toBeGreaterThanOrEqual(Math.max(block.requested, MIN_BLOCK));
    expect((block.offset - start) % block.size).toBe(0);
    expect(block.offset).toBeGreaterThanOrEqual(start);
    expect(block.offset + block.size).toBeLessThanOrEqual(end);
    expect(block.offset + block.size).toBeLessThanOrEqual(allocator.top);
  }
  for (const block of free) {
    expect(block.size).toBeGreaterThanOrEqual(MIN_BLOCK);
    expect((block.offset - start) % block.size).toBe(0);
    expect(block.offset).toBeGreaterThanOrEqual(start);
    expect(block.offset + block.size).toBeLessThanOrEqual(allocator.top);
  }
  // Nothing overlaps: live and free blocks together tile [start, top) exactly.
  const all = [...live, ...free].sort((a, b) => a.offset - b.offset);
  let cursor = start;
  for (const block of all) {
    expect(block.offset, `gap or overlap at ${cursor}`).toBe(cursor);
    cursor = block.offset + block.size;
  }
  expect(cursor).toBe(allocator.top);
  expect(allocator.untouched).toBe(end - allocator.top);
}

type Op =
  | { kind: "allocate"; bytes: number }
  | { kind: "free"; pick: number }
  | { kind: "grow"; pages: number }
  | { kind: "rebuild" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("allocate" as const),
      bytes: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 40_000 })),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("grow" as const),
      pages: fc.integer({ min: 0, max: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("rebuild" as const) }) },
);

describe("BlockAllocator", () => {
  it("blockOrder and blockSize round up to a power of two of at least MIN_BLOCK", () => {
    expect(blockOrder(1)).toBe(5);
    expect(blockOrder(32)).toBe(5);
    expect(blockOrder(33)).toBe(6);
    expect(BlockAllocator.blockSize(0)).toBe(MIN_BLOCK);
    expect(BlockAllocator.blockSize(256)).toBe(256);
    expect(BlockAllocator.blockSize(257)).toBe(512);
    expect(BlockAllocator.blockSize(1024 * 1024 + 1)).toBe(2 * 1024 * 1024);
  });

  it("hands out aligned blocks from the bottom and refuses when the heap is full", () => {
    const allocator = BlockAllocator.empty(4096, 4096 + 1024);
    expect(allocator.allocate(100)).toBe(4096); // 128
    expect(allocator.allocate(256)).toBe(4096 + 256); // aligned: the gap 128..256 is freed
    expect(allocator.allocate(128)).toBe(4096 + 128); // the gap is reused
    expect(allocator.allocate(512)).toBe(4096 + 512);
    expect(allocator.allocate(32)).toBeUndefined();
    allocator.extend(4096 + 2048);
    expect(allocator.allocate(32)).toBe(4096 + 1024);
  });

  it("merges freed buddies back into one block", () => {
    const allocator = BlockAllocator.empty(0, 1024);
    const blocks = Array.from({ length: 32 }, () => allocator.allocate(32) as number);
    expect(allocator.allocate(32)).toBeUndefined();
    for (const block of blocks.reverse()) allocator.free(block, 32);
    expect(allocator.freeBlocks()).toEqual([{ offset: 0, size: 1024 }]);
    expect(allocator.allocate(1024)).toBe(0);
  });

  it("the alignment gap left by a bump merges with a free buddy (regression)", () => {
    const allocator = BlockAllocator.empty(0, 4096);
    allocator.free(allocator.allocate(1) as number, 1); // [0, 32) free
    expect(allocator.allocate(33)).toBe(64); // bumps past the gap [32, 64)
    expect(allocator.freeBlocks()).toEqual([{ offset: 0, size: 64 }]);
    // The 64 bytes below are reused instead of growing the heap.
    expect(allocator.allocate(64)).toBe(0);
    expect(allocator.top).toBe(128);
  });

  it("rebuild() refuses overlapping, misaligned or out-of-heap blocks", () => {
    expect(() => BlockAllocator.rebuild(0, 1024, [{ offset: 16, size: 32 }])).toThrow(RangeError);
    expect(() =>
      BlockAllocator.rebuild(0, 1024, [
        { offset: 0, size: 64 },
        { offset: 32, size: 32 },
      ]),
    ).toThrow(RangeError);
    expect(() => BlockAllocator.rebuild(64, 1024, [{ offset: 0, size: 32 }])).toThrow(RangeError);
    expect(() => BlockAllocator.rebuild(0, 1024, [{ offset: 1024, size: 1024 }])).toThrow(
      RangeError,
    );
    expect(() => BlockAllocator.rebuild(0, 1024, [{ offset: 0, size: 16 }])).toThrow(RangeError);
  });

  it("rebuild() frees exactly the gaps between used blocks", () => {
    const allocator = BlockAllocator.rebuild(100, 100 + 4096, [
      { offset: 100 + 256, size: 256 },
      { offset: 100 + 1024, size: 32 },
    ]);
    expect(allocator.top).toBe(100 + 1024 + 32);
    expect(allocator.freeBlocks()).toEqual([
      { offset: 100, size: 256 },
      { offset: 100 + 512, size: 512 },
    ]);
    checkInvariants(allocator, 100, [
      { offset: 100 + 256, size: 256, requested: 256 },
      { offset: 100 + 1024, size: 32, requested: 32 },
    ]);
  });

  it("extend() never shrinks the heap", () => {
    const allocator = BlockAllocator.empty(0, 4096);
    expect(() => allocator.extend(2048)).toThrow(RangeError);
    allocator.extend(4096);
    expect(allocator.end).toBe(4096);
  });

  it("allocate/free/grow/rebuild sequences keep every invariant against a model", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 64 }).map((n) => n * 16),
        fc.integer({ min: 1, max: 16 }),
        fc.array(opArb, { maxLength: 200 }),
        (start, pages, ops) => {
          let end = start + pages * 4096;
          let allocator = BlockAllocator.empty(start, end);
          let live: Live[] = [];
          for (const op of ops) {
            switch (op.kind) {
              case "allocate": {
                const size = BlockAllocator.blockSize(op.bytes);
                const topBefore = allocator.top;
                const reusable = allocator.freeBlocks().some((block) => block.size >= size);
                const offset = allocator.allocate(op.bytes);
                if (offset === undefined) {
                  // Refused only when no free block fits and the untouched top cannot hold it.
                  expect(reusable).toBe(false);
                  const aligned = start + Math.ceil((topBefore - start) / size) * size;
                  expect(aligned + size).toBeGreaterThan(end);
                  expect(allocator.top).toBe(topBefore);
                } else {
                  // Freed space is reused before the heap's untouched top is touched.
                  if (reusable) expect(allocator.top).toBe(topBefore);
                  live.push({ offset, size, requested: op.bytes });
                }
                break;
              }
              case "free": {
                if (live.length === 0) break;
                const [block] = live.splice(op.pick % live.length, 1) as [Live];
                allocator.free(block.offset, block.requested);
                break;
              }
              case "grow":
                end += op.pages * 4096;
                allocator.extend(end);
                break;
              case "rebuild":
                // What the owner does on open: only the used blocks are known.
                allocator = BlockAllocator.rebuild(
                  start,
                  end,
                  live.map(({ offset, size }) => ({ offset, size })),
                );
                break;
            }
            checkInvariants(allocator, start, live);
          }
          // Freeing everything merges the heap back into maximal aligned blocks.
          for (const block of live) allocator.free(block.offset, block.requested);
          live = [];
          checkInvariants(allocator, start, live);
          for (const block of allocator.freeBlocks()) {
            const buddy = start + ((block.offset - start) ^ block.size);
            expect(
              allocator.freeBlocks().some((b) => b.offset === buddy && b.size === block.size),
              `unmerged buddies at ${block.offset}`,
            ).toBe(false);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("an allocator rebuilt from the used blocks never hands out a used block", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 100 }),
        (sizes, keep, later) => {
          const start = 8192;
          const end = start + 1024 * 1024;
          const original = BlockAllocator.empty(start, end);
          const used: UsedBlock[] = [];
          sizes.forEach((bytes, i) => {
            const offset = original.allocate(bytes) as number;
            if (keep[i] === true) used.push({ offset, size: BlockAllocator.blockSize(bytes) });
          });
          const rebuilt = BlockAllocator.rebuild(start, end, used);
          const live: Live[] = used.map((block) => ({ ...block, requested: block.size }));
          checkInvariants(rebuilt, start, live);
          for (const bytes of later) {
            const offset = rebuilt.allocate(bytes);
            if (offset === undefined) continue;
            live.push({ offset, size: BlockAllocator.blockSize(bytes), requested: bytes });
          }
          checkInvariants(rebuilt, start, live);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("BlockAllocator beyond 2 GiB of heap", () => {
  it("merges buddies whose offsets do not fit a signed 32-bit integer", () => {
    const start = 4096;
    const allocator = BlockAllocator.empty(start, start + 2 ** 32);
    const gib = 2 ** 30;
    const blocks = [0, 1, 2, 3].map(() => allocator.allocate(gib));
    expect(blocks).toEqual([start, start + gib, start + 2 * gib, start + 3 * gib]);
    allocator.free(start + 2 * gib, gib);
    allocator.free(start + 3 * gib, gib);
    expect(allocator.freeBlocks()).toEqual([{ offset: start + 2 * gib, size: 2 * gib }]);
  });
});
