/**
 * Change notification within and across mappings of one service file:
 * pollChanges, the ring-overflow rescan, watch(), changes() and
 * waitForChangeSync. Cross-process wake-ups are in cross-process.test.ts.
 */
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OwnedServiceFile, ServiceFile, type VariableChange } from "../../src/shm/index.js";
import { Header, Record, Slot } from "../../src/shm/layout.js";
import { makeTempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let count = 0;
const open: ServiceFile[] = [];

function track<T extends ServiceFile>(file: T): T {
  open.push(file);
  return file;
}

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
});

afterEach(() => {
  for (const file of open.splice(0)) file.close();
  cleanup();
});

function create(ringCapacity = 64): { path: string; owner: OwnedServiceFile } {
  const path = join(dir, `svc-${count++}.commy`);
  return { path, owner: track(OwnedServiceFile.create(path, { serviceId: "c", ringCapacity })) };
}

/** Applies changes in order, as a consumer would, checking versions never go back. */
function apply(seen: Map<string, number>, changes: readonly VariableChange[]): Map<string, number> {
  for (const change of changes) {
    if (change.kind === "delete") {
      expect(seen.has(change.name), `delete of unknown ${change.name}`).toBe(true);
      seen.delete(change.name);
    } else {
      const before = seen.get(change.name) ?? 0;
      expect(change.version, change.name).toBeGreaterThan(before);
      seen.set(change.name, change.version);
    }
  }
  return seen;
}

function current(file: ServiceFile): Map<string, number> {
  return new Map(file.list().map(({ name, version }) => [name, version]));
}

/** Resolves with the first batch `watch()` delivers that satisfies `predicate`. */
function nextWatched(
  file: ServiceFile,
  predicate: (changes: VariableChange[]) => boolean,
  timeoutMs = 5_000,
): Promise<VariableChange[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error("watch() reported nothing in time"));
    }, timeoutMs);
    const stop = file.watch((changes) => {
      if (!predicate(changes)) return;
      clearTimeout(timer);
      stop();
      resolve(changes);
    });
  });
}

describe("pollChanges", () => {
  it("starts from now, then reports each variable's latest version in order", () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    owner.allocate("b", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    expect(local.pollChanges()).toEqual([]);
    owner.write("a", Buffer.from("2"));
    local.write("b", Buffer.from("2"));
    owner.write("a", Buffer.from("3"));
    const changes = local.pollChanges();
    expect(changes).toContainEqual({ name: "a", version: 3, kind: "write" });
    expect(changes).toContainEqual({ name: "b", version: 2, kind: "write" });
    expect(
      apply(
        new Map([
          ["a", 1],
          ["b", 1],
        ]),
        changes,
      ),
    ).toEqual(current(owner));
    expect(local.pollChanges()).toEqual([]);
  });

  it("reports a create as a write at version 1 and a delete as kind 'delete'", () => {
    const { path, owner } = create();
    owner.allocate("gone", Buffer.from("x"));
    owner.write("gone", Buffer.from("y"));
    const local = track(ServiceFile.open(path));
    local.pollChanges();
    owner.allocate("fresh", Buffer.from("x"));
    expect(local.pollChanges()).toEqual([{ name: "fresh", version: 1, kind: "write" }]);
    owner.deallocate("gone");
    expect(local.pollChanges()).toEqual([{ name: "gone", version: 2, kind: "delete" }]);
    // Deleted and created again: a delete, then the new life at version 1.
    owner.write("fresh", Buffer.from("z"));
    local.pollChanges();
    owner.deallocate("fresh");
    owner.allocate("fresh", Buffer.from("again"));
    expect(local.pollChanges()).toEqual([
      { name: "fresh", version: 2, kind: "delete" },
      { name: "fresh", version: 1, kind: "write" },
    ]);
  });

  it("after more writes than the ring holds, a rescan still reports the latest versions", () => {
    const { path, owner } = create(16);
    for (const name of ["a", "b", "d", "x"]) owner.allocate(name, Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    const seen = current(local);
    local.pollChanges();
    for (let i = 0; i < 100; i++) owner.write("a", Buffer.from(`a${i}`));
    for (let i = 0; i < 3; i++) local.write("b", Buffer.from(`b${i}`));
    owner.allocate("c", Buffer.from("1"));
    owner.deallocate("d");
    // x dies and is born again in another record.
    owner.deallocate("x");
    owner.allocate("filler", Buffer.from("takes x's old record"));
    owner.allocate("x", Buffer.from("new x"));
    owner.write("x", Buffer.from("newer x"));
    apply(seen, local.pollChanges());
    expect(seen).toEqual(current(owner));
    expect(seen.get("a")).toBe(101);
    expect(seen.get("x")).toBe(2);
    expect(local.pollChanges()).toEqual([]);
  });

  it("random writes, creates and deletes are always reported, in order, with or without overflow", () => {
    const names = ["a", "b", "c", "d"];
    type Op =
      | { kind: "write"; name: number; local: boolean; times: number }
      | { kind: "toggle"; name: number }
      | { kind: "poll" };
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant("write" as const),
          name: fc.nat({ max: 3 }),
          local: fc.boolean(),
          times: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 10, max: 40 })),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant("toggle" as const), name: fc.nat({ max: 3 }) }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("poll" as const) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const { path, owner } = create(16);
        const local = ServiceFile.open(path);
        try {
          owner.allocate("a", Buffer.from("1"));
          const seenByLocal = current(local);
          const seenByOwner = current(owner);
          local.pollChanges();
          owner.pollChanges();
          for (const step of [...ops, { kind: "poll" } as Op]) {
            const name = names[step.kind === "poll" ? 0 : step.name] as string;
            if (step.kind === "write") {
              if (owner.find(name) === undefined) continue;
              for (let i = 0; i < step.times; i++) {
                // Local writes stay within the capacity (16); the owner's may relocate.
                const length = step.local ? i % 17 : i * 7;
                (step.local ? local : owner).write(name, Buffer.alloc(length, i));
              }
            } else if (step.kind === "toggle") {
              if (owner.find(name) === undefined) owner.allocate(name, Buffer.from(name));
              else owner.deallocate(name);
            } else {
              expect(apply(seenByLocal, local.pollChanges())).toEqual(current(owner));
              expect(apply(seenByOwner, owner.pollChanges())).toEqual(current(owner));
            }
          }
        } finally {
          local.close();
          open.splice(open.indexOf(owner), 1);
          owner.close();
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe("waitForChangeSync", () => {
  it("returns false when nothing changed, true at once when a change is pending", () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    expect(local.waitForChangeSync(0)).toBe(false);
    expect(local.waitForChangeSync(20)).toBe(false);
    owner.write("a", Buffer.from("2"));
    expect(local.waitForChangeSync(10_000)).toBe(true);
    // It does not consume: the change is still there to poll.
    expect(local.waitForChangeSync(10_000)).toBe(true);
    expect(local.pollChanges()).toEqual([{ name: "a", version: 2, kind: "write" }]);
    expect(local.waitForChangeSync(0)).toBe(false);
  });
});

describe("watch() and changes() in one process", () => {
  it("watch() delivers writes of this process and of other mappings", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    const first = nextWatched(local, (changes) => changes.some((c) => c.version === 2));
    owner.write("a", Buffer.from("2"));
    expect(await first).toEqual([{ name: "a", version: 2, kind: "write" }]);
    const second = nextWatched(local, (changes) => changes.some((c) => c.version === 3));
    local.write("a", Buffer.from("3"));
    expect(await second).toEqual([{ name: "a", version: 3, kind: "write" }]);
  });

  it("watch() and pollChanges() share the file's cursor: each change is delivered once", async () => {
    // src/core/change-feed.ts relies on this: it polls right after the
    // server's own writes and watches for everyone else's.
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    local.pollChanges();
    const watched = nextWatched(local, () => true);
    owner.write("a", Buffer.from("2"));
    expect(local.pollChanges()).toEqual([{ name: "a", version: 2, kind: "write" }]);
    owner.write("a", Buffer.from("3"));
    expect(await watched).toEqual([{ name: "a", version: 3, kind: "write" }]);
  });

  it("watch() delivers at once what changed since the last pollChanges()", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    local.pollChanges();
    owner.write("a", Buffer.from("2"));
    // No later change moves the word the watcher sleeps on: it must look by itself.
    expect(await nextWatched(local, () => true)).toEqual([
      { name: "a", version: 2, kind: "write" },
    ]);
  });

  it("a watcher whose change was announced half-way (writer died) still hears of it", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    owner.allocate("b", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    const watched = nextWatched(local, (changes) => changes.some((c) => c.name === "b"));
    // A local writer publishes b's next value as the format says...
    const u32 = (owner as unknown as { u32: Uint32Array }).u32;
    const record = owner.handle("b").record;
    const next = (record + Record.SLOT1) / 4; // CTL is 0: slot 1 is the inactive one
    u32[next + Slot.LENGTH / 4] = 0;
    u32[next + Slot.VERSION_LO / 4] = 2;
    Atomics.add(u32, (record + Record.CTL) / 4, 1);
    // ...reserves its ring entry and dies before filling it.
    Atomics.add(u32, Header.CHANGE_HEAD / 4, 1);
    // Later changes wait behind the stalled entry until the reader gives up on it.
    owner.write("a", Buffer.from("2"));
    expect(await watched).toContainEqual({ name: "b", version: 2, kind: "write" });
    expect(local.read("b")).toEqual({ data: Buffer.alloc(0), version: 2 });
  });

  it("changes() yields batches and ends when aborted", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    const controller = new AbortController();
    const iterator = local.changes({ signal: controller.signal });
    const first = iterator.next();
    owner.write("a", Buffer.from("2"));
    expect(await first).toEqual({ done: false, value: [{ name: "a", version: 2, kind: "write" }] });
    const second = iterator.next();
    controller.abort();
    expect(await second).toEqual({ done: true, value: undefined });
  });

  it("changes() ends when the file is closed", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = ServiceFile.open(path);
    const iterator = local.changes();
    const pending = iterator.next();
    local.close();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      pending,
      new Promise((resolve) => (timer = setTimeout(() => resolve("still waiting"), 2_000))),
    ]);
    clearTimeout(timer);
    expect(outcome).toEqual({ done: true, value: undefined });
  });

  it("changes() ends and watch() gets an empty batch when the owner deletes the service", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    const iterator = local.changes();
    const pending = iterator.next();
    const watched = new Promise<VariableChange[]>((resolve) => {
      const other = track(ServiceFile.open(path));
      const stop = other.watch((changes) => {
        stop();
        resolve(changes);
      });
    });
    owner.markDeleted();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(await watched).toEqual([]);
    expect(local.deleted).toBe(true);
  });

  it("a stopped watcher is never called again", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    let calls = 0;
    const stop = local.watch(() => calls++);
    stop();
    stop(); // twice is harmless
    const other = nextWatched(local, () => true);
    owner.write("a", Buffer.from("2"));
    // Another watcher hearing of the write proves the first one had its chance.
    await other;
    expect(calls).toBe(0);
  });

  it("a watcher started after a change is not told of it, only of later ones", async () => {
    const { path, owner } = create();
    owner.allocate("a", Buffer.from("1"));
    const local = track(ServiceFile.open(path));
    owner.write("a", Buffer.from("2"));
    const watched = nextWatched(local, () => true);
    owner.write("a", Buffer.from("3"));
    expect(await watched).toEqual([{ name: "a", version: 3, kind: "write" }]);
  });
});
