/**
 * The one change path (DESIGN §1): every write, whichever door it came
 * through, is announced in its service file's change ring; the feed reads
 * the ring — right after the server's own writes, and on the futex wake-up
 * for writes by local processes — and hands each change once to the
 * listeners of that service.
 */
import type { OwnedServiceFile, VariableChange, VersionedValue } from "../shm/index.js";
import { ShmError } from "../shm/index.js";

/** Reads a variable's current value once per dispatch, whoever asks. */
export type ValueReader = (name: string) => VersionedValue | undefined;

/** Someone interested in the changes of services. */
export interface ChangeListener {
  /** Changes of one service, in ring order; `read` shares one read per variable among listeners. */
  onChanges(serviceId: string, changes: readonly VariableChange[], read: ValueReader): void;
  /** The service is gone. */
  onServiceDeleted(serviceId: string): void;
}

interface Feed {
  file: OwnedServiceFile;
  listeners: Set<ChangeListener>;
  stopWatching: () => void;
}

export class ChangeFeed {
  readonly #feeds = new Map<string, Feed>();

  /** Starts telling `listener` about the service's changes; returns a function that stops it. */
  listen(serviceId: string, file: OwnedServiceFile, listener: ChangeListener): () => void {
    let feed = this.#feeds.get(serviceId);
    if (feed === undefined) {
      // Position the cursor at "now" before the first listener can miss anything.
      file.pollChanges();
      const stopWatching = file.watch((changes) => this.#dispatch(serviceId, changes));
      feed = { file, listeners: new Set(), stopWatching };
      this.#feeds.set(serviceId, feed);
    }
    feed.listeners.add(listener);
    return () => this.#unlisten(serviceId, listener);
  }

  /** Reads what the server just wrote into a service file and dispatches it. */
  publish(serviceId: string): void {
    const feed = this.#feeds.get(serviceId);
    if (feed === undefined) return;
    const changes = feed.file.pollChanges();
    if (changes.length > 0) this.#dispatch(serviceId, changes);
  }

  /** The service was deleted: tells its listeners and stops watching it. */
  serviceDeleted(serviceId: string): void {
    const feed = this.#feeds.get(serviceId);
    if (feed === undefined) return;
    this.#feeds.delete(serviceId);
    feed.stopWatching();
    for (const listener of feed.listeners) listener.onServiceDeleted(serviceId);
  }

  /** Listeners of a service (for metrics and tests). */
  listenerCount(serviceId: string): number {
    return this.#feeds.get(serviceId)?.listeners.size ?? 0;
  }

  close(): void {
    for (const serviceId of [...this.#feeds.keys()]) this.serviceDeleted(serviceId);
  }

  #unlisten(serviceId: string, listener: ChangeListener): void {
    const feed = this.#feeds.get(serviceId);
    if (feed === undefined) return;
    feed.listeners.delete(listener);
    if (feed.listeners.size > 0) return;
    feed.stopWatching();
    this.#feeds.delete(serviceId);
  }

  #dispatch(serviceId: string, changes: readonly VariableChange[]): void {
    const feed = this.#feeds.get(serviceId);
    if (feed === undefined) return;
    const cache = new Map<string, VersionedValue | undefined>();
    const read: ValueReader = (name) => {
      if (cache.has(name)) return cache.get(name);
      const value = readQuietly(feed.file, name);
      cache.set(name, value);
      return value;
    };
    for (const listener of feed.listeners) listener.onChanges(serviceId, changes, read);
  }
}

/** The current value, or undefined when the variable is gone meanwhile. */
export function readQuietly(file: OwnedServiceFile, name: string): VersionedValue | undefined {
  try {
    return file.read(name);
  } catch (error) {
    if (error instanceof ShmError && (error.code === "NOT_FOUND" || error.code === "CLOSED"))
      return undefined;
    throw error;
  }
}
