/**
 * Service files shared between real processes: torn-read freedom, writers
 * killed with SIGKILL, lock recovery, wake-ups across processes and
 * persistence across an owner's restart or death. Children run
 * test/shm/fixtures/shm-child.ts; every wait is on a message or an exit.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OwnedServiceFile, ServiceFile, type VariableChange } from "../../src/shm/index.js";
import { Children, isUniform, makeTempDir, shmErrorCode, uniformValue } from "./helpers.js";

let dir: string;
let cleanup: () => void;
const children = new Children();
const open: ServiceFile[] = [];

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
});

afterEach(async () => {
  await children.killAll();
  for (const file of open.splice(0)) file.close();
  cleanup();
});

function track<T extends ServiceFile>(file: T): T {
  open.push(file);
  return file;
}

function createOwned(
  name = "svc.commy",
  ringCapacity = 64,
): { path: string; owner: OwnedServiceFile } {
  const path = join(dir, name);
  return { path, owner: track(OwnedServiceFile.create(path, { serviceId: "svc", ringCapacity })) };
}

/** Resolves once `predicate` holds for the latest version `watch()` reported per name. */
function watchUntil(
  file: ServiceFile,
  predicate: (latest: Map<string, number>) => boolean,
  timeoutMs = 10_000,
): Promise<Map<string, number>> {
  const latest = new Map<string, number>();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`watch() did not report in time: ${JSON.stringify([...latest])}`));
    }, timeoutMs);
    const stop = file.watch((changes) => {
      for (const change of changes) {
        if (change.kind === "delete") latest.delete(change.name);
        else latest.set(change.name, change.version);
      }
      if (predicate(latest)) {
        clearTimeout(timer);
        stop();
        resolve(latest);
      }
    });
  });
}

describe("torn-read freedom across processes", () => {
  it("a reader process never sees a torn value while a writer process hammers a variable", async () => {
    const { path, owner } = createOwned();
    owner.allocate("hot", uniformValue(1, 10), { capacity: 4096 });
    const reader = children.start("readCheck", {
      path,
      name: "hot",
      maxLength: 4096,
      enough: 200,
    });
    const writer = children.start("hammer", {
      path,
      names: ["hot"],
      maxLength: 4096,
      maxMs: 10_000,
      waitForGo: true,
    });
    await Promise.all([reader.next("ready"), writer.next("ready")]);
    writer.send({ type: "go" });
    // The writer runs until the reader has seen it at work long enough.
    await reader.next("enough");
    writer.send({ type: "stop" });
    const done = await writer.next("done");
    reader.send({ type: "stop" });
    const result = await reader.next("result");
    const final = (done.versions as Record<string, number>).hot as number;
    expect(final).toBe(1 + (done.writes as number));
    expect(result).toMatchObject({ torn: 0, backwards: 0, last: final });
    expect(result.distinct as number).toBeGreaterThanOrEqual(200);
    const { data, version } = owner.read("hot");
    expect(version).toBe(final);
    expect(isUniform(data, version)).toBe(true);
    await Promise.all([writer.done(), reader.done()]);
  });

  it("an owner process relocating a growing value never gives a reader a torn value", async () => {
    const path = join(dir, "svc.commy");
    const creator = OwnedServiceFile.create(path, { serviceId: "svc", ringCapacity: 64 });
    creator.allocate("hot", uniformValue(1, 4));
    creator.close();
    const reader = children.start("readCheck", {
      path,
      name: "hot",
      maxLength: 256 * 1024,
      enough: 50,
    });
    const writer = children.start("hammer", {
      path,
      owner: true,
      names: ["hot"],
      maxLength: 256 * 1024,
      growEvery: 400,
      minWrites: 6_000,
      maxMs: 10_000,
      waitForGo: true,
    });
    await Promise.all([reader.next("ready"), writer.next("ready")]);
    writer.send({ type: "go" });
    await reader.next("enough");
    writer.send({ type: "stop" });
    const done = await writer.next("done");
    reader.send({ type: "stop" });
    const result = await reader.next("result");
    const final = (done.versions as Record<string, number>).hot as number;
    expect(result).toMatchObject({ torn: 0, backwards: 0, last: final });
    expect(result.distinct as number).toBeGreaterThanOrEqual(50);
    expect(done.writes as number).toBeGreaterThanOrEqual(6_000);
    await Promise.all([writer.done(), reader.done()]);
    const reopened = track(OwnedServiceFile.openOwned(path));
    const info = reopened.info("hot");
    expect(info.version).toBe(final);
    // The capacity followed the value up: the owner relocated it several times.
    expect(info.capacity).toBeGreaterThanOrEqual(64 * 1024);
    expect(isUniform(reopened.read("hot").data, final)).toBe(true);
  });

  it("two writer processes incrementing with compare-and-set lose no update", async () => {
    const { path, owner } = createOwned();
    owner.allocate("counter", uniformValue(1, 1), { capacity: 64 });
    const count = 2_000;
    const writers = [0, 1].map(() => children.start("increment", { path, name: "counter", count }));
    await Promise.all(writers.map((w) => w.next("ready")));
    for (const w of writers) w.send({ type: "go" });
    await Promise.all(writers.map((w) => w.next("done")));
    const { data, version } = owner.read("counter");
    expect(version).toBe(1 + 2 * count);
    expect(isUniform(data, version)).toBe(true);
    await Promise.all(writers.map((w) => w.done()));
  });
});

describe("writers that die", () => {
  it("a writer killed with SIGKILL mid-stream leaves every variable readable and writable", async () => {
    const { path, owner } = createOwned();
    const names = ["a", "b", "c", "d"];
    for (const name of names) owner.allocate(name, uniformValue(1, 8), { capacity: 1024 });
    for (let round = 0; round < 3; round++) {
      const writer = children.start("hammer", { path, names, maxLength: 1024, startedAfter: 3000 });
      await writer.next("started");
      expect((await writer.kill()).signal).toBe("SIGKILL");
      // Old or new, never torn; versions only moved forward.
      const before = new Map<string, number>();
      for (const name of names) {
        const { data, version } = owner.read(name);
        expect(isUniform(data, version), `${name}@${version}`).toBe(true);
        before.set(name, version);
      }
      // Another process writes every variable: a lock the dead writer held is recovered.
      const later = children.start("write", { path, names, length: 100 });
      const { versions } = await later.next("wrote");
      await later.done();
      for (const name of names) {
        const { data, version } = owner.read(name);
        expect(version).toBe((versions as Record<string, number>)[name]);
        expect(version).toBe((before.get(name) as number) + 1);
        expect(data).toEqual(uniformValue(version, 100));
      }
    }
    const expected = new Map(names.map((name) => [name, owner.version(name)]));
    owner.close();
    const reopened = track(OwnedServiceFile.openOwned(path));
    expect(reopened.names().sort()).toEqual(names);
    for (const name of names) {
      const { data, version } = reopened.read(name);
      expect(version).toBe(expected.get(name));
      expect(data).toEqual(uniformValue(version, 100));
    }
    expect(reopened.write("a", Buffer.from("after"))).toBe((expected.get("a") as number) + 1);
  });

  it("a lock held by a live process is respected; once the holder is killed it is taken over", async () => {
    const { path, owner } = createOwned();
    owner.allocate("x", Buffer.from("old"));
    const watcher = track(ServiceFile.open(path));
    const seen = watchUntil(watcher, (latest) => latest.get("x") === 2);
    const holder = children.start("lockAndHang", { path, name: "x" });
    await holder.next("locked");
    // The holder is alive: a writer waits for it, then gives up (about 2 s).
    expect(shmErrorCode(() => owner.write("x", Buffer.from("blocked")))).toBe("LOCKED");
    expect(owner.read("x")).toEqual({ data: Buffer.from("old"), version: 1 });
    await holder.kill();
    expect(owner.write("x", Buffer.from("new"))).toBe(2);
    expect(owner.read("x")).toEqual({ data: Buffer.from("new"), version: 2 });
    expect((await seen).get("x")).toBe(2);
  });

  it("openOwned clears the lock of a killed writer", async () => {
    const { path, owner } = createOwned();
    owner.allocate("y", Buffer.from("kept"));
    owner.write("y", Buffer.from("kept2"));
    const holder = children.start("lockAndHang", { path, name: "y" });
    await holder.next("locked");
    await holder.kill();
    owner.close();
    const reopened = track(OwnedServiceFile.openOwned(path));
    expect(reopened.repairs).toContain(`released y, locked by dead process ${holder.pid}`);
    expect(reopened.read("y")).toEqual({ data: Buffer.from("kept2"), version: 2 });
    // A local process writes at once: the lock is free.
    const later = children.start("write", { path, names: ["y"], length: 3 });
    expect((await later.next("wrote")).versions).toEqual({ y: 3 });
    await later.done();
    expect(reopened.read("y")).toEqual({ data: uniformValue(3, 3), version: 3 });
  });
});

describe("waking other processes", () => {
  const wakeModes = [
    { label: "waitForChangeSync", mode: "waitSync", message: "woken", extra: {} },
    { label: "watch()", mode: "watch", message: "changed", extra: {} },
    { label: "changes()", mode: "watch", message: "changed", extra: { iterate: true } },
    {
      label: "waitForChangeSync on a read-only mapping",
      mode: "waitSync",
      message: "woken",
      extra: { readOnly: true },
    },
    {
      label: "watch() on a read-only mapping",
      mode: "watch",
      message: "changed",
      extra: { readOnly: true },
    },
  ];

  for (const { label, mode, message, extra } of wakeModes) {
    it(`a process sleeping in ${label} is woken by another process's write`, async () => {
      const { path, owner } = createOwned();
      owner.allocate("x", Buffer.from("before"));
      owner.allocate("other", Buffer.from("-"));
      const sleeper = children.start(mode, { path, name: "x", timeoutMs: 10_000, ...extra });
      await sleeper.next("ready");
      owner.write("x", Buffer.from("after"));
      const woken = await sleeper.next(message);
      if (mode === "waitSync") {
        expect(woken.changed).toBe(true);
        expect(woken.elapsedMs as number).toBeLessThan(5_000);
      }
      expect(woken.changes).toContainEqual({ name: "x", version: 2, kind: "write" });
      expect(woken.version).toBe(2);
      expect(Buffer.from(woken.hex as string, "hex").toString()).toBe("after");
      await sleeper.done();
    });
  }

  it("watch() in this process fires for a write from another process", async () => {
    const { path, owner } = createOwned();
    owner.allocate("x", Buffer.from("before"));
    const local = track(ServiceFile.open(path));
    const seenByOwner = watchUntil(owner, (latest) => latest.get("x") === 2);
    const seenByLocal = watchUntil(local, (latest) => latest.get("x") === 2);
    const writer = children.start("write", { path, names: ["x"], length: 5 });
    expect((await writer.next("wrote")).versions).toEqual({ x: 2 });
    await Promise.all([seenByOwner, seenByLocal]);
    expect(local.read("x")).toEqual({ data: uniformValue(2, 5), version: 2 });
    await writer.done();
  });

  it("changes() in this process yields a write from another process", async () => {
    const { path, owner } = createOwned();
    owner.allocate("x", Buffer.from("before"));
    const local = track(ServiceFile.open(path));
    const iterator = local.changes();
    const first = iterator.next();
    const writer = children.start("write", { path, names: ["x"], length: 7 });
    await writer.next("wrote");
    const batches: VariableChange[][] = [];
    for (let batch = await first; batch.done !== true; batch = await iterator.next()) {
      batches.push(batch.value);
      if (batch.value.some((change) => change.name === "x" && change.version === 2)) break;
    }
    await iterator.return(undefined);
    expect(batches.flat()).toContainEqual({ name: "x", version: 2, kind: "write" });
    expect(local.read("x")).toEqual({ data: uniformValue(2, 7), version: 2 });
    await writer.done();
  });
});

describe("restart persistence", () => {
  it("values and versions survive close and openOwned", () => {
    const { path, owner } = createOwned();
    owner.allocate("a", Buffer.from("a1"));
    owner.allocate("b", Buffer.from("b1"));
    for (let i = 2; i <= 5; i++) owner.write("a", Buffer.from(`a${i}`));
    owner.write("b", Buffer.alloc(5000, 7)); // relocated
    owner.allocate("gone", Buffer.from("x"));
    owner.deallocate("gone");
    owner.close();
    const reopened = track(OwnedServiceFile.openOwned(path));
    expect(reopened.repairs).toEqual([]);
    expect(reopened.names().sort()).toEqual(["a", "b"]);
    expect(reopened.read("a")).toEqual({ data: Buffer.from("a5"), version: 5 });
    expect(reopened.read("b")).toEqual({ data: Buffer.alloc(5000, 7), version: 2 });
    expect(reopened.write("a", Buffer.from("a6"))).toBe(6);
    const local = track(ServiceFile.open(path));
    expect(local.list()).toEqual([
      { name: "a", version: 6, size: 2, capacity: 16 },
      { name: "b", version: 2, size: 5000, capacity: 8192 },
    ]);
    expect(local.find("gone")).toBeUndefined();
  });

  it("values and versions survive the owner process being killed with SIGKILL", async () => {
    const path = join(dir, "svc.commy");
    const hex = (text: string): string => Buffer.from(text).toString("hex");
    const variables = {
      alpha: [hex("a1"), hex("a2"), hex("a3")],
      beta: [hex("b1")],
      gamma: [hex("g1"), Buffer.alloc(3000, 9).toString("hex")],
    };
    const ownerProcess = children.start("ownerHold", { path, variables });
    const { model } = await ownerProcess.next("ready");
    await ownerProcess.kill();
    const reopened = track(OwnedServiceFile.openOwned(path));
    const local = track(ServiceFile.open(path));
    for (const [name, { version, hex: value }] of Object.entries(
      model as Record<string, { version: number; hex: string }>,
    )) {
      for (const file of [reopened, local]) {
        const read = file.read(name);
        expect(read.version).toBe(version);
        expect(read.data.toString("hex")).toBe(value);
      }
    }
    expect(reopened.info("gamma")).toMatchObject({ version: 2, size: 3000 });
    expect(reopened.write("beta", Buffer.from("b2"))).toBe(2);
    reopened.allocate("delta", Buffer.from("d1"));
    expect(local.read("delta")).toEqual({ data: Buffer.from("d1"), version: 1 });
  });

  it("an owner killed while creating, relocating and deleting leaves a file openOwned can use", async () => {
    const path = join(dir, "svc.commy");
    const churn = children.start("ownerChurn", { path });
    const finished = new Map<string, number>();
    for (let created = 0; created < 1500;) {
      const progress = await churn.next("progress");
      created = progress.created as number;
      for (const [name, version] of Object.entries(progress.finished as Record<string, number>)) {
        finished.set(name, version);
      }
    }
    await churn.kill();
    const reopened = track(OwnedServiceFile.openOwned(path));
    const local = track(ServiceFile.open(path));
    // Everything the dead owner finished is there, as it left it.
    for (const [name, version] of finished) {
      const { data, version: found } = local.read(name);
      expect(found, name).toBe(version);
      expect(isUniform(data, version), name).toBe(true);
    }
    // Whatever else survived is consistent too.
    for (const info of reopened.list()) {
      const { data, version } = reopened.read(info.name);
      expect(isUniform(data, version), info.name).toBe(true);
      expect(data.length).toBe(info.size);
    }
    // The rebuilt file keeps working: create, write beyond capacity, delete.
    reopened.allocate("fresh", Buffer.from("1"));
    expect(reopened.write("fresh", Buffer.alloc(10_000, 2))).toBe(2);
    const [someName] = finished.keys();
    reopened.deallocate(someName as string);
    expect(local.find(someName as string)).toBeUndefined();
    expect(local.read("fresh").data).toEqual(Buffer.alloc(10_000, 2));
  });
});
