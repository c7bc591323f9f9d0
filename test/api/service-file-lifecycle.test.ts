/**
 * How service files come and go without costing the request path: a new
 * service takes a spare file made beforehand (in the background), and a
 * deleted service's file is marked deleted at once but closed and unlinked
 * a moment later. What a crash leaves in between (spares, files of deleted
 * services) is removed at the next start; every acknowledged change is
 * kept. Closing waits for the work in the background.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/audit-log.js";
import { SERVER_ADMIN_CALLER } from "../../src/core/caller.js";
import { CommyCore } from "../../src/core/commy-core.js";
import { ServiceFileRegistry } from "../../src/core/service-file-registry.js";
import { ServiceFile } from "../../src/shm/index.js";
import type { ControlStore } from "../../src/store/control-store.js";
import { openSqliteControlStore } from "../../src/store/sqlite-control-store.js";
import { type TestDataDir, createTestDataDir } from "../helpers/test-server.js";

const caller = { ...SERVER_ADMIN_CALLER, clientAddress: "127.0.0.1:1" };

let dataDir: TestDataDir;
const servicesDir = (): string => join(dataDir.path, "services");
const filesOnDisk = (): string[] =>
  readdirSync(servicesDir())
    .filter((name) => name.endsWith(".commy"))
    .sort();
const fileOf = (serviceId: string): string => `${serviceId}.commy`;

beforeEach(() => {
  dataDir = createTestDataDir();
});
afterEach(() => dataDir.remove());

describe("the service file registry", () => {
  it("hands out ready files under fresh ids, keeps spares made between calls, and removes them on close", async () => {
    const registry = new ServiceFileRegistry(dataDir.path);
    const first = registry.claim();
    const second = registry.claim();
    expect(first.serviceId).not.toBe(second.serviceId);
    expect(registry.get(first.serviceId)).toBe(first);
    await registry.settled();
    const owned = [fileOf(first.serviceId), fileOf(second.serviceId)].sort();
    const spares = filesOnDisk().filter((name) => !owned.includes(name));
    expect(spares.length).toBeGreaterThan(0);

    const third = registry.claim();
    const thirdFile = fileOf(third.serviceId);
    expect(spares).toContain(thirdFile);
    expect(third.allocate("v", new Uint8Array([1, 2, 3])).version).toBe(1);
    const reader = ServiceFile.open(third.path, { readOnly: true });
    try {
      expect([...reader.read("v").data]).toEqual([1, 2, 3]);
    } finally {
      reader.close();
    }

    await registry.closeAll();

    expect(filesOnDisk()).toEqual([...owned, thirdFile].sort());
  });

  it("closing waits for spares still being made, and removes them", async () => {
    const registry = new ServiceFileRegistry(dataDir.path);
    const owned = fileOf(registry.claim().serviceId);
    // One turn: the upkeep has started making spares, none has finished.
    await new Promise((resolve) => setImmediate(resolve));

    await registry.closeAll();

    expect(filesOnDisk()).toEqual([owned]);
  });

  it("marks a removed file deleted at once, and unlinks it in a later turn", async () => {
    const registry = new ServiceFileRegistry(dataDir.path);
    const file = registry.claim();
    const { serviceId, path } = file;
    const reader = ServiceFile.open(path, { readOnly: true });
    try {
      registry.remove(serviceId);

      expect(reader.deleted).toBe(true);
      expect(registry.get(serviceId)).toBeUndefined();
      expect(existsSync(path)).toBe(true);
      await registry.settled();
      expect(existsSync(path)).toBe(false);
    } finally {
      reader.close();
      await registry.closeAll();
    }
  });

  it("at the next start, removes what a crash left: spares and files of deleted services", async () => {
    const crashed = new ServiceFileRegistry(dataDir.path);
    const kept = crashed.claim().serviceId;
    const deleted = crashed.claim().serviceId;
    await crashed.settled();
    crashed.remove(deleted);
    // No upkeep turn and no closeAll(): the process ends here.

    const next = new ServiceFileRegistry(dataDir.path);
    const mended = next.reconcile([
      {
        serviceId: kept,
        tenantId: "t",
        serviceName: "s",
        createdBy: "admin",
        createdAt: 0,
      },
    ]);
    try {
      expect(mended.removedOrphans).toContain(fileOf(deleted));
      expect(filesOnDisk()).toEqual([fileOf(kept)]);
      expect(next.get(kept)).toBeDefined();
    } finally {
      await next.closeAll();
      await crashed.closeAll();
    }
  });
});

describe("a service and its audit row commit together", () => {
  let store: ControlStore;
  let files: ServiceFileRegistry;
  /** Audit actions whose rows the store refuses (a full disk, as far as SQLite can tell). */
  const refused = new Set<string>();

  beforeEach(() => {
    const real = openSqliteControlStore(join(dataDir.path, "commy.db"));
    store = {
      ...real,
      appendAudit: (event) => {
        if (refused.has(event.action)) throw new Error("SQLITE_FULL: database or disk is full");
        real.appendAudit(event);
      },
    };
    files = new ServiceFileRegistry(dataDir.path);
    refused.clear();
  });
  afterEach(async () => {
    await files.closeAll();
    store.close();
  });

  function core(): CommyCore {
    return new CommyCore({ store, files, audit: new AuditLog(store) });
  }

  it("a create whose audit row cannot be written leaves no service, no row and no file", async () => {
    const commy = core();
    commy.createTenant(caller, { tenantId: "t" });
    refused.add("service.create");

    await expect(
      commy.createService(caller, { tenantId: "t", serviceName: "s" }),
    ).rejects.toThrow();

    expect(store.getService("t", "s")).toBeUndefined();
    expect(() => commy.getService(caller, { tenantId: "t", serviceName: "s" })).toThrow(
      /not found|NOT_FOUND|service s/i,
    );
    const owned = store.allServices().map((s) => fileOf(s.serviceId));
    await files.closeAll();
    expect(filesOnDisk()).toEqual(owned);
  });

  it("a delete whose audit row cannot be written keeps the service, its row and its file", async () => {
    const commy = core();
    commy.createTenant(caller, { tenantId: "t" });
    const service = await commy.createService(caller, { tenantId: "t", serviceName: "s" });
    refused.add("service.delete");

    await expect(
      commy.deleteService(caller, { tenantId: "t", serviceName: "s" }),
    ).rejects.toThrow();

    expect(store.getService("t", "s")?.serviceId).toBe(service.serviceId);
    expect(commy.getService(caller, { tenantId: "t", serviceName: "s" }).serviceId).toBe(
      service.serviceId,
    );
    await files.settled();
    expect(existsSync(join(servicesDir(), fileOf(service.serviceId)))).toBe(true);
  });

  it("every acknowledged create and delete has its audit row", async () => {
    const commy = core();
    commy.createTenant(caller, { tenantId: "t" });
    await commy.createService(caller, { tenantId: "t", serviceName: "s" });
    await commy.deleteService(caller, { tenantId: "t", serviceName: "s" });

    const actions = store
      .queryAudit({ tenantId: "t", limit: 10 })
      .map((event) => `${event.action} ${event.outcome}`);
    expect(actions).toEqual(["tenant.create ok", "service.create ok", "service.delete ok"]);
  });
});

describe("creates and deletes that wait for a shared commit", () => {
  let store: ControlStore;
  let files: ServiceFileRegistry;

  beforeEach(() => {
    store = openSqliteControlStore(join(dataDir.path, "commy.db"));
    files = new ServiceFileRegistry(dataDir.path);
  });
  afterEach(async () => {
    await files.closeAll();
    store.close();
  });

  function core(maxServices = 100): CommyCore {
    return new CommyCore({ store, files, audit: new AuditLog(store), quotas: { maxServices } });
  }
  const ref = (serviceName: string) => ({ tenantId: "t", serviceName });
  const codeOf = async (change: Promise<unknown>): Promise<string> =>
    change.then(
      () => "OK",
      (error: unknown) => (error as { code?: string }).code ?? String(error),
    );

  it("of one name at once: one create wins, the others are told it exists", async () => {
    const commy = core();
    commy.createTenant(caller, { tenantId: "t" });

    const codes = await Promise.all(
      [1, 2, 3].map(() => codeOf(commy.createService(caller, ref("s")))),
    );

    expect(codes.sort()).toEqual(["ALREADY_EXISTS", "ALREADY_EXISTS", "OK"]);
    expect(store.listServices("t", undefined, 10).items.map((s) => s.serviceName)).toEqual(["s"]);
  });

  it("a create is visible once committed; a delete sent right behind it deletes it", async () => {
    const commy = core();
    commy.createTenant(caller, { tenantId: "t" });

    const created = commy.createService(caller, ref("s"));
    const deleted = commy.deleteService(caller, ref("s"));
    expect(() => commy.getService(caller, ref("s"))).toThrow(/does not exist/);
    const { serviceId } = await created;
    await deleted;

    expect(store.getService("t", "s")).toBeUndefined();
    await files.settled();
    expect(existsSync(join(servicesDir(), fileOf(serviceId)))).toBe(false);
  });

  it("creates waiting for their commit count against the tenant's quota", async () => {
    const commy = core(2);
    commy.createTenant(caller, { tenantId: "t" });

    const codes = await Promise.all(
      ["a", "b", "c", "d"].map((name) => codeOf(commy.createService(caller, ref(name)))),
    );

    expect(codes).toEqual(["OK", "OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]);
  });

  it("a tenant deleted while a create waits for its commit leaves no service and no file", async () => {
    const commy = core();
    commy.createTenant(caller, { tenantId: "t" });

    const created = commy.createService(caller, ref("s"));
    commy.deleteTenant(caller, "t");
    const { serviceId } = await created;

    expect(() => commy.getService(caller, ref("s"))).toThrow(/does not exist/);
    expect(store.allServices()).toEqual([]);
    await files.settled();
    expect(filesOnDisk()).not.toContain(fileOf(serviceId));
  });
});
