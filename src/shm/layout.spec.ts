import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isValidName } from "../core/names.js";
import {
  DEFAULT_RING_CAPACITY,
  HEADER_SIZE,
  Header,
  INITIAL_INDEX_CAPACITY,
  Index,
  MAGIC,
  MAX_VALUE_SIZE,
  MIN_BLOCK,
  PAGE_SIZE,
  Record,
  RingEntry,
  Slot,
  hashName,
  hashValidName,
  nextPowerOfTwo,
} from "./layout.js";

describe("layout", () => {
  it("hashName is 32-bit FNV-1a", () => {
    // Published FNV-1a test vectors.
    expect(hashName("")).toBe(0x811c9dc5);
    expect(hashName("a")).toBe(0xe40c292c);
    expect(hashName("foobar")).toBe(0xbf9cf968);
    expect(hashName("n".repeat(128))).toBeGreaterThanOrEqual(0);
  });

  it("hashValidName is hashName for valid names and -1 for the rest", () => {
    const nameLike = fc.string({
      unit: fc.constantFrom(..."aZ09._-/ é\u0000".split("")),
      minLength: 0,
      maxLength: 140,
    });
    fc.assert(
      fc.property(fc.oneof(nameLike, fc.string({ maxLength: 130 })), (name) => {
        expect(hashValidName(name)).toBe(isValidName(name) ? hashName(name) : -1);
      }),
      { numRuns: 2000 },
    );
    expect(hashValidName("a".repeat(128))).toBe(hashName("a".repeat(128)));
    expect(hashValidName("a".repeat(129))).toBe(-1);
    expect(hashValidName(".hidden")).toBe(-1);
    expect(hashValidName("")).toBe(-1);
  });

  it("nextPowerOfTwo rounds up", () => {
    expect([0, 1, 2, 3, 16, 17, 1000, 1024, 1025].map(nextPowerOfTwo)).toEqual([
      1, 1, 2, 4, 16, 32, 1024, 1024, 2048,
    ]);
  });

  it("the magic is COMMYSVC and the header fits its page", () => {
    expect(Buffer.from(MAGIC).toString("latin1")).toBe("COMMYSVC");
    expect(HEADER_SIZE).toBe(PAGE_SIZE);
    const words = Object.entries(Header).filter(([key]) => !key.startsWith("SERVICE_ID"));
    for (const [key, offset] of words) {
      expect(offset % 4, key).toBe(0);
      expect(offset + 4, key).toBeLessThanOrEqual(Header.SERVICE_ID);
    }
    expect(new Set(words.map(([, offset]) => offset)).size).toBe(words.length);
    expect(Header.SERVICE_ID + Header.SERVICE_ID_LENGTH).toBeLessThanOrEqual(HEADER_SIZE);
  });

  it("a record holds its words, two slots and a 128-character name, 16-byte aligned", () => {
    expect(Record.SIZE).toBe(256);
    for (const field of [Record.STATE, Record.INCARNATION, Record.LOCK, Record.CTL]) {
      expect(field % 4).toBe(0);
    }
    expect(Record.SLOT0 + Slot.SIZE).toBeLessThanOrEqual(Record.SLOT1);
    expect(Record.SLOT1 + Slot.SIZE).toBeLessThanOrEqual(Record.NAME);
    expect(Record.NAME + 128).toBeLessThanOrEqual(Record.SIZE);
    expect(Slot.VERSION_HI).toBe(Slot.VERSION_LO + 4);
  });

  it("ring entries, the index and the heap agree with the documented sizes", () => {
    expect(RingEntry.SIZE).toBe(16);
    expect(RingEntry.SEQ).toBe(0);
    expect(DEFAULT_RING_CAPACITY & (DEFAULT_RING_CAPACITY - 1)).toBe(0);
    expect(INITIAL_INDEX_CAPACITY & (INITIAL_INDEX_CAPACITY - 1)).toBe(0);
    expect(Index.SLOTS % 4).toBe(0);
    expect(Index.EMPTY).toBe(0);
    expect(Index.TOMBSTONE).toBe(1);
    expect(MIN_BLOCK & (MIN_BLOCK - 1)).toBe(0);
    // A value length fits the 21 bits a handle's view key reserves for it.
    expect(MAX_VALUE_SIZE).toBeLessThan(2 ** 21);
  });
});
