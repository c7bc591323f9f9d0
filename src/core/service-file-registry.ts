/**
 * Internal: the server's open service files, one per service, named by the
 * service's id (never by a raw name) under <data-dir>/services/.
 *
 * Making a file (open, ftruncate, a 1 GiB mapping, header, ring and index)
 * and unmapping and unlinking one cost more than the store rows of a
 * service, so neither happens on the request path: a few spare files are
 * kept ready, each under a fresh service id that the next new service
 * takes, and a deleted service's file is marked deleted at once (what local
 * mappers watch) but closed and unlinked a moment later. Both leave files
 * no service owns after a crash, which reconcile() removes at start-up.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { OwnedServiceFile } from "../shm/index.js";
import type { ServiceRecord } from "../store/control-store.js";

const SUFFIX = ".commy";
/**
 * Spare files kept ready: as many as the creates that usually arrive
 * together (one event-loop turn's worth), so that a burst finds them made.
 */
const SPARE_FILES = 8;

/** How service files are sized. */
export interface ServiceFileLimits {
  /** Bytes each service file may grow to (default 1 GiB). */
  maxSize?: number;
  /** Bytes a new service file starts with (default 256 KiB). */
  initialSize?: number;
  /** Told each time any service file grows (metrics). */
  onGrow?: (newSize: number) => void;
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
  /** Made, empty and ready, each under its own fresh service id; no service owns them yet. */
  readonly #spares: OwnedServiceFile[] = [];
  /** Deleted services' files (marked deleted), still to close and unlink. */
  readonly #doomed: { path: string; file: OwnedServiceFile | undefined }[] = [];
  /** The pending turn that does the deferred work, if any. */
  #upkeep: NodeJS.Immediate | undefined;

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
    const file = this.#make(serviceId);
    this.#open.set(serviceId, file);
    return file;
  }

  /**
   * A new, empty file under a fresh service id (its `serviceId`), for a new
   * service to take: a spare one when there is one, made now otherwise.
   */
  claim(): OwnedServiceFile {
    const file = this.#spares.pop() ?? this.#make(randomUUID());
    this.#open.set(file.serviceId, file);
    this.#scheduleUpkeep();
    return file;
  }

  /** The open file of a service, if any. */
  get(serviceId: string): OwnedServiceFile | undefined {
    return this.#open.get(serviceId);
  }

  /**
   * Marks a service's file deleted now (local mappers let go); closes and
   * unlinks it off the request path, in the next upkeep turn.
   */
  remove(serviceId: string): void {
    const file = this.#open.get(serviceId);
    this.#open.delete(serviceId);
    file?.markDeleted();
    this.#doomed.push({ path: this.pathOf(serviceId), file });
    this.#scheduleUpkeep();
  }

  /** Closes and unlinks the files of deleted services now instead of in the next upkeep turn. */
  finishRemovals(): void {
    for (let next = this.#doomed.shift(); next !== undefined; next = this.#doomed.shift()) {
      next.file?.close();
      unlinkUnowned(next.path);
    }
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
        file.onGrow = this.#limits.onGrow;
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

  /** Closes every file; deleted services' and spare files are unlinked first. */
  closeAll(): void {
    if (this.#upkeep !== undefined) clearImmediate(this.#upkeep);
    this.#upkeep = undefined;
    this.finishRemovals();
    for (const spare of this.#spares.splice(0)) {
      spare.close();
      unlinkUnowned(spare.path);
    }
    for (const file of this.#open.values()) file.close();
    this.#open.clear();
  }

  #make(serviceId: string): OwnedServiceFile {
    const { maxSize, initialSize, onGrow } = this.#limits;
    const file = OwnedServiceFile.create(this.pathOf(serviceId), {
      serviceId,
      maxSize,
      initialSize,
    });
    file.onGrow = onGrow;
    return file;
  }

  #scheduleUpkeep(): void {
    this.#upkeep ??= setImmediate(() => this.#doUpkeep());
  }

  /**
   * Removals first (they free what spares use), then one spare per turn so
   * that calls that arrive meanwhile wait for one file at most. Failures
   * here are not any caller's: a removal left undone is repaired at the
   * next start, and a spare not made is made by the claim that needs it.
   */
  #doUpkeep(): void {
    this.#upkeep = undefined;
    try {
      this.finishRemovals();
      if (this.#spares.length < SPARE_FILES) {
        this.#spares.push(this.#make(randomUUID()));
        if (this.#spares.length < SPARE_FILES) this.#scheduleUpkeep();
      }
    } catch {
      // See above: nothing to report to, and nothing lost.
    }
  }
}

/** Unlinks a file no service owns; one left behind is removed by the next start's reconcile(). */
function unlinkUnowned(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or left for reconcile(): nobody is waiting for it.
  }
}
