import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OwnedServiceFile } from "./owned-service-file.js";
import { ServiceFile } from "./service-file.js";
import { ShmError } from "./shm-error.js";

let dir: string;
let counter = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "commy-owned-spec-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const NAMES = ["a", "b.c", "x-1", "_y", "Z", "n".repeat(128)];

type Op =
  | { kind: "allocate"; name: number; value: Uint8Array; capacity: number | undefined }
  | { kind: "write"; name: number; value: Uint8Array; cas: "none" | "right" | "wrong" }
  | { kind: "deallocate"; name: number }
  | { kind: "reopen" };

const valueArb = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 600 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 20_000 }) },
);
const nameArb = fc.nat({ max: NAMES.length - 1 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("allocate" as const),
      name: nameArb,
      value: valueArb,
      capacity: fc.option(fc.integer({ min: 0, max: 4096 }), { nil: undefined }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      name: nameArb,
      value: valueArb,
      cas: fc.constantFrom("none" as const, "right" as const, "wrong" as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("deallocate" as const), name: nameArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reopen" as const) }) },
);

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (error) {
    if (error instanceof ShmError) return error.code;
    throw error;
  }
}

interface Entry {
  data: Buffer;
  version: number;
}

/** The owner, a separately mapped local view, and the model agree on everything. */
function checkAgainstModel(
  owner: OwnedServiceFile,
  local: ServiceFile,
  model: Map<string, Entry>,
): void {
  const names = [...model.keys()].sort();
  expect(owner.names().sort()).toEqual(names);
  expect(owner.variableCount).toBe(model.size);
  for (const file of [owner, local]) {
    expect(file.list().map(({ name, version, size }) => ({ name, version, size }))).toEqual(
      names.map((name) => {
        const entry = model.get(name) as Entry;
        return { name, version: entry.version, size: entry.data.length };
      }),
    );
    for (const name of NAMES) {
      const entry = model.get(name);
      if (entry === undefined) {
        expect(file.find(name)).toBeUndefined();
        expect(codeOf(() => file.read(name))).toBe("NOT_FOUND");
      } else {
        expect(file.read(name)).toEqual(entry);
        expect(file.version(name)).toBe(entry.version);
      }
    }
  }
}

describe("OwnedServiceFile against a Map model", () => {
  it("allocate/write/deallocate/reopen sequences keep names, values and versions", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 50 }), (ops) => {
        const path = join(dir, `model-${counter++}.commy`);
        let owner = OwnedServiceFile.create(path, {
          serviceId: "model",
          ringCapacity: 16,
          maxSize: 64 * 1024 * 1024,
        });
        const local = ServiceFile.open(path);
        const model = new Map<string, Entry>();
        try {
          for (const op of ops) {
            switch (op.kind) {
              case "allocate": {
                const name = NAMES[op.name] as string;
                const exists = model.has(name);
                const options = op.capacity === undefined ? {} : { capacity: op.capacity };
                const code = codeOf(() => owner.allocate(name, op.value, options));
                expect(code).toBe(exists ? "EXISTS" : "ok");
                if (!exists) {
                  model.set(name, { data: Buffer.from(op.value), version: 1 });
                  const info = owner.info(name);
                  expect(info.version).toBe(1);
                  expect(info.capacity).toBeGreaterThanOrEqual(
                    Math.max(op.value.length, op.capacity ?? 0),
                  );
                }
                break;
              }
              case "write": {
                const name = NAMES[op.name] as string;
                const entry = model.get(name);
                const expectedVersion =
                  op.cas === "none"
                    ? undefined
                    : (entry?.version ?? 1) + (op.cas === "wrong" ? 1 : 0);
                let version = 0;
                const code = codeOf(() => {
                  version = owner.write(name, op.value, { expectedVersion });
                });
                if (entry === undefined) {
                  expect(code).toBe("NOT_FOUND");
                } else if (op.cas === "wrong") {
                  expect(code).toBe("VERSION_CONFLICT");
                } else {
                  // Values that outgrow the capacity are relocated by the owner.
                  expect(code).toBe("ok");
                  expect(version).toBe(entry.version + 1);
                  model.set(name, { data: Buffer.from(op.value), version });
                }
                break;
              }
              case "deallocate": {
                const name = NAMES[op.name] as string;
                const code = codeOf(() => owner.deallocate(name));
                expect(code).toBe(model.delete(name) ? "ok" : "NOT_FOUND");
                break;
              }
              case "reopen":
                owner.close();
                owner = OwnedServiceFile.openOwned(path);
                expect(owner.repairs).toEqual([]);
                break;
            }
            checkAgainstModel(owner, local, model);
          }
        } finally {
          owner.close();
          local.close();
          rmSync(path, { force: true });
        }
      }),
      { numRuns: 120 },
    );
  });

  it("versions start at 1, go up by one per write and never go back, across reopen", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant("write" as const), fc.constant("reopen" as const)), {
          maxLength: 40,
        }),
        (steps) => {
          const path = join(dir, `versions-${counter++}.commy`);
          let owner = OwnedServiceFile.create(path, { serviceId: "v", ringCapacity: 16 });
          try {
            expect(owner.allocate("v", Buffer.of(0)).version).toBe(1);
            let expected = 1;
            for (const step of steps) {
              if (step === "reopen") {
                owner.close();
                owner = OwnedServiceFile.openOwned(path);
              } else {
                expected++;
                expect(owner.write("v", Buffer.alloc(expected * 37, expected))).toBe(expected);
              }
              expect(owner.version("v")).toBe(expected);
            }
          } finally {
            owner.close();
            rmSync(path, { force: true });
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe("files made and removed in the background", () => {
  it("makes the same files as create(), byte for byte, ready for any process", async () => {
    const options = { initialSize: 300 * 1024 };
    const direct = OwnedServiceFile.create(join(dir, "direct.commy"), {
      ...options,
      serviceId: "svc-bg",
    });
    const made = await OwnedServiceFile.createInBackground(
      [
        { path: join(dir, "background.commy"), serviceId: "svc-bg" },
        { path: join(dir, "other.commy"), serviceId: "other" },
      ],
      options,
    );
    const [background, other] = made.map((result) => {
      if (result instanceof Error) throw result;
      return result;
    }) as [OwnedServiceFile, OwnedServiceFile];
    try {
      expect(background.serviceId).toBe("svc-bg");
      expect(other.serviceId).toBe("other");
      expect(background.size).toBe(direct.size);
      expect(readFileSync(background.path).equals(readFileSync(direct.path))).toBe(true);
      background.allocate("v", new Uint8Array([4, 5]));
      const reader = ServiceFile.open(background.path, { readOnly: true });
      expect([...reader.read("v").data]).toEqual([4, 5]);
      reader.close();
    } finally {
      direct.close();
      background.close();
      other.close();
    }
  });

  it("refuses a taken path with EXISTS, leaves that file alone and makes the others", async () => {
    const taken = join(dir, "taken.commy");
    const first = OwnedServiceFile.create(taken, { serviceId: "first" });
    try {
      const [refused, made] = await OwnedServiceFile.createInBackground([
        { path: taken, serviceId: "second" },
        { path: join(dir, "free.commy"), serviceId: "free" },
      ]);
      expect(refused instanceof ShmError && refused.code === "EXISTS").toBe(true);
      expect(made instanceof OwnedServiceFile && made.serviceId === "free").toBe(true);
      expect(first.serviceId).toBe("first");
      if (made instanceof OwnedServiceFile) made.close();
    } finally {
      first.close();
    }
  });

  it("closes and unlinks files together; each counts as closed at once", async () => {
    const paths = [join(dir, "gone-1.commy"), join(dir, "gone-2.commy")];
    const files = paths.map((path, i) => OwnedServiceFile.create(path, { serviceId: `g${i}` }));
    const reader = ServiceFile.open(paths[0] as string, { readOnly: true });

    const removed = ServiceFile.closeAndUnlinkInBackground(files);

    expect(files.every((file) => file.closed)).toBe(true);
    await removed;
    expect(paths.map((path) => existsSync(path))).toEqual([false, false]);
    // A process that still maps a removed file keeps reading it.
    expect(reader.serviceId).toBe("g0");
    reader.close();
  });
});
