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
 *
 * Nor does most of that work run on the event loop: spares are made on
 * libuv's threadpool (OwnedServiceFile.createInBackground: only header and
 * index here), and deleted files are unmapped, closed and unlinked there,
 * all the files of one upkeep turn in one job each way (a hand-over to the
 * threadpool costs the event loop more than most of these system calls).
 * closeAll() waits for all of it.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { join } from "node:path";
import { OwnedServiceFile, ServiceFile } from "../shm/index.js";
import type { ServiceRecord } from "../store/control-store.js";

const SUFFIX = ".commy";
/**
 * Spare files kept ready: twice the creates that usually arrive together
 * (one event-loop turn's worth), because a spare takes a few turns to come
 * back from the threadpool; with 8 the bench's 8 concurrent pairs still
 * found none now and then and made one on the event loop.
 */
const SPARE_FILES = 16;

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
  /** Spares being made on the threadpool. */
  #making = 0;
  /** Deleted services' files (marked deleted), still to close and unlink. */
  readonly #doomed: { path: string; file: OwnedServiceFile | undefined }[] = [];
  /** The pending turn that does the deferred work, if any. */
  #upkeep: NodeJS.Immediate | undefined;
  /** Work on the threadpool (spares being made, files being unlinked), for closeAll() and settled(). */
  readonly #background = new Set<Promise<void>>();
  /** Set by closeAll(): no more spares, and spares that finish are removed. */
  #closed = false;

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

  /**
   * Sends the files of deleted services to be closed and unlinked now
   * instead of in the next upkeep turn (see settled()).
   */
  finishRemovals(): void {
    const doomed = this.#doomed.splice(0);
    const files = doomed.flatMap((next) => next.file ?? []);
    this.#inBackground(ServiceFile.closeAndUnlinkInBackground(files));
    for (const next of doomed) {
      if (next.file === undefined) this.#inBackground(unlinkUnowned(next.path));
    }
  }

  /**
   * Resolves once the deferred work asked for so far is done: files of
   * deleted services unlinked, spares made (or failed to be).
   */
  async settled(): Promise<void> {
    while (this.#upkeep !== undefined || this.#background.size > 0) {
      if (this.#upkeep !== undefined) await new Promise((resolve) => setImmediate(resolve));
      await Promise.all(this.#background);
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

  /**
   * Closes every file once the work in the background is done; deleted
   * services' and spare files are unlinked.
   */
  async closeAll(): Promise<void> {
    this.#closed = true;
    if (this.#upkeep !== undefined) clearImmediate(this.#upkeep);
    this.#upkeep = undefined;
    this.finishRemovals();
    await this.settled();
    await ServiceFile.closeAndUnlinkInBackground(this.#spares.splice(0));
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
    if (this.#closed) return;
    this.#upkeep ??= setImmediate(() => this.#doUpkeep());
  }

  /** Removals first (they free what spares use), then the spares missing, made together. */
  #doUpkeep(): void {
    this.#upkeep = undefined;
    this.finishRemovals();
    const missing = SPARE_FILES - this.#spares.length - this.#making;
    if (missing > 0) this.#makeSpares(missing);
  }

  /**
   * Spares on the threadpool. A failure here is no caller's: a spare not
   * made is made by the claim that needs it.
   */
  #makeSpares(count: number): void {
    const { maxSize, initialSize, onGrow } = this.#limits;
    const files = Array.from({ length: count }, () => {
      const serviceId = randomUUID();
      return { serviceId, path: this.pathOf(serviceId) };
    });
    this.#making += count;
    const made = OwnedServiceFile.createInBackground(files, { maxSize, initialSize }).then(
      async (results) => {
        this.#making -= count;
        const spares = results.filter((result) => result instanceof OwnedServiceFile);
        if (this.#closed) return ServiceFile.closeAndUnlinkInBackground(spares);
        for (const spare of spares) {
          spare.onGrow = onGrow;
          this.#spares.push(spare);
        }
      },
      () => {
        this.#making -= count;
      },
    );
    this.#inBackground(made);
  }

  #inBackground(work: Promise<void>): void {
    this.#background.add(work);
    void work.then(() => this.#background.delete(work));
  }
}

/** Unlinks a file no service owns; one left behind is removed by the next start's reconcile(). */
async function unlinkUnowned(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // Already gone, or left for reconcile(): nobody is waiting for it.
  }
}
