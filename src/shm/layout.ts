/**
 * Internal: the byte layout of a service file, format version 1. This file
 * and docs/file-format.md are the same contract; change both or neither.
 * All numbers are little-endian; every offset below is in bytes.
 */

/** "COMMYSVC" */
export const MAGIC = Uint8Array.of(0x43, 0x4f, 0x4d, 0x4d, 0x59, 0x53, 0x56, 0x43);
export const FORMAT_VERSION = 1;
export const PAGE_SIZE = 4096;

/** The header: one page at offset 0. */
export const Header = {
  MAGIC: 0,
  FORMAT_VERSION: 8,
  HEADER_SIZE: 12,
  /** 0 while the owner initialises the file, 1 once it is usable (set last). */
  READY: 16,
  /** 1 once the service is deleted; mappers must let go. */
  DELETED: 20,
  /** Bytes of the file that are initialised and may be read (grows). */
  SIZE: 24,
  /** Bytes every process reserves for its mapping; SIZE never exceeds it. */
  MAX_SIZE: 28,
  /** +1 on every change of structure (directory, relocation, growth). */
  GENERATION: 32,
  /** Positions handed out in the change ring; the futex word for waiters. */
  CHANGE_HEAD: 36,
  /** How many threads sleep on CHANGE_HEAD; writers wake them when non-zero. */
  WAITERS: 40,
  /** Where the name index block lives (moves when the index grows). */
  INDEX_OFFSET: 44,
  RING_OFFSET: 48,
  /** Entries in the change ring, a power of two. */
  RING_CAPACITY: 52,
  /** Where the heap of blocks begins. */
  HEAP_OFFSET: 56,
  /** Live variables (informational). */
  VARIABLE_COUNT: 60,
  /** Process id of the owner that last opened the file (informational). */
  OWNER_PID: 64,
  /**
   * Threads of the owner sleeping on CHANGE_HEAD. Kept apart from WAITERS
   * so that the owner's own writes need not wake its own watcher.
   */
  OWNER_WAITERS: 68,
  /** The service's id, ASCII, NUL-padded (64 bytes). */
  SERVICE_ID: 128,
  SERVICE_ID_LENGTH: 64,
} as const;

export const HEADER_SIZE = PAGE_SIZE;

/** One change ring entry (16 bytes). */
export const RingEntry = {
  /** position + 1, written last: tells a complete entry from a stale one. */
  SEQ: 0,
  RECORD: 4,
  INCARNATION: 8,
  KIND: 12,
  SIZE: 16,
} as const;

/** What a ring entry announces. */
export const ChangeKind = { WRITE: 1, CREATE: 2, DELETE: 3 } as const;

export const DEFAULT_RING_CAPACITY = 4096;

/** A variable record: 256 bytes in the heap; it never moves while live. */
export const Record = {
  /** 0 free, 1 live, 2 deleted. */
  STATE: 0,
  /** +1 each time the record is created or deleted; tells reuse apart. */
  INCARNATION: 4,
  /** Process id of the writer holding the record, or 0. */
  LOCK: 8,
  /** Publish counter: +1 per write; the current slot is CTL & 1. */
  CTL: 12,
  NAME_LENGTH: 16,
  NAME_HASH: 20,
  SLOT0: 24,
  SLOT1: 44,
  NAME: 64,
  SIZE: 256,
} as const;

/** One of a record's two value slots (20 bytes). */
export const Slot = {
  OFFSET: 0,
  CAPACITY: 4,
  LENGTH: 8,
  VERSION_LO: 12,
  VERSION_HI: 16,
  SIZE: 20,
} as const;

export const RecordState = { FREE: 0, LIVE: 1, DELETED: 2 } as const;

/** The name index: an open-addressing table of record offsets. */
export const Index = {
  CAPACITY: 0,
  LIVE: 4,
  TOMBSTONES: 8,
  SLOTS: 16,
  EMPTY: 0,
  TOMBSTONE: 1,
} as const;

export const INITIAL_INDEX_CAPACITY = 1024;

/** Smallest heap block, in bytes. Blocks are powers of two, aligned to their size. */
export const MIN_BLOCK = 32;

/** The largest value a variable may hold. */
export const MAX_VALUE_SIZE = 1024 * 1024;

export const DEFAULT_INITIAL_SIZE = 256 * 1024;
export const DEFAULT_MAX_SIZE = 1024 * 1024 * 1024;
/** File sizes are u32 in the header. */
export const LIMIT_MAX_SIZE = 4 * 1024 * 1024 * 1024 - PAGE_SIZE;

/** FNV-1a over the name's characters (names are ASCII). */
export function hashName(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The longest name a record holds. */
export const MAX_NAME_LENGTH = 128;

/** 1 for the characters a name may hold: [A-Za-z0-9._-]. */
const NAME_CHARACTER = Uint8Array.from({ length: 128 }, (_, code) =>
  /[A-Za-z0-9._-]/.test(String.fromCharCode(code)) ? 1 : 0,
);

/**
 * FNV-1a of `name` (as `hashName`), or -1 when it breaks the naming rule
 * (1–128 of [A-Za-z0-9._-], not starting with '.'). One pass checks and
 * hashes: the rule's regular expression cost creation and lookup more than
 * the rest of the name handling together.
 */
export function hashValidName(name: string): number {
  const length = name.length;
  if (length === 0 || length > MAX_NAME_LENGTH || name.charCodeAt(0) === 0x2e) return -1;
  let hash = 0x811c9dc5;
  for (let i = 0; i < length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 128 || NAME_CHARACTER[code] === 0) return -1;
    hash ^= code;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The smallest power of two ≥ n, for 0 < n ≤ 2^31. */
export function nextPowerOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** (32 - Math.clz32(n - 1));
}
