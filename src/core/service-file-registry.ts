/**
 * Internal: the server's open service files, one per service, named by the
 * service's id (never by a raw name) under <data-dir>/services/.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { OwnedServiceFile } from "../shm/index.js";
import type { ServiceRecord } from "../store/control-store.js";

const SUFFIX = ".commy";

/** How service files are sized. */
export interface ServiceFileLimits {
  /** Bytes each service file may grow to (default 1 GiB). */
  maxSize?: number;
  /** Bytes a new service file starts with (default 256 KiB). */
  initialSize?: number;
}

/** What start-up had to mend, for the log. */
export interface Reconciliation {
  removedOrphans: string[];
  recreated: string[];
  repaired: { serviceId: string; notes: string[] }[];
}

export class ServiceFileRegistry {
  readonly #dir: string;
  readonly #limits: ServiceFileLimits;
  readonly #open = new Map<string, OwnedServiceFile>();

  constructor(dataDir: string, limits: ServiceFileLimits = {}) {
    this.#dir = join(dataDir, "services");
    this.#limits = limits;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
  }

  /** Absolute path of a service's file. */
  pathOf(serviceId: string): string {
    return join(this.#dir, `${serviceId}${SUFFIX}`);
  }

  /** Creates and opens a new, empty file for a service. */
  create(serviceId: string): OwnedServiceFile {
    const file = OwnedServiceFile.create(this.pathOf(serviceId), {
      serviceId,
      ...this.#limits,
    });
    this.#open.set(serviceId, file);
    return file;
  }

  /** The open file of a service, if any. */
  get(serviceId: string): OwnedServiceFile | undefined {
    return this.#open.get(serviceId);
  }

  /** Marks a service's file deleted (local mappers let go), closes and unlinks it. */
  remove(serviceId: string): void {
    const file = this.#open.get(serviceId);
    this.#open.delete(serviceId);
    if (file !== undefined) {
      file.markDeleted();
      file.close();
    }
    unlinkSync(this.pathOf(serviceId));
  }

  /**
   * Opens the file of every stored service. The store is the truth: a file
   * no service owns is removed (a create or delete interrupted by a crash);
   * a service whose file is missing or unreadable gets a new, empty one.
   */
  reconcile(services: readonly ServiceRecord[]): Reconciliation {
    const result: Reconciliation = { removedOrphans: [], recreated: [], repaired: [] };
    const known = new Set(services.map((s) => s.serviceId));
    for (const entry of readdirSync(this.#dir)) {
      if (!entry.endsWith(SUFFIX)) continue;
      if (known.has(entry.slice(0, -SUFFIX.length))) continue;
      unlinkSync(join(this.#dir, entry));
      result.removedOrphans.push(entry);
    }
    for (const service of services) {
      try {
        const file = OwnedServiceFile.openOwned(this.pathOf(service.serviceId));
        this.#open.set(service.serviceId, file);
        if (file.repairs.length > 0)
          result.repaired.push({ serviceId: service.serviceId, notes: file.repairs });
      } catch (error) {
        // Keep a broken file for inspection instead of deleting evidence.
        const path = this.pathOf(service.serviceId);
        if (existsSync(path)) renameSync(path, `${path}.broken-${Date.now()}`);
        this.create(service.serviceId);
        result.recreated.push(`${service.serviceId}: ${(error as Error).message}`);
      }
    }
    return result;
  }

  closeAll(): void {
    for (const file of this.#open.values()) file.close();
    this.#open.clear();
  }
}
