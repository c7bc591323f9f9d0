/**
 * The one change path (DESIGN §1): every write, whichever door it came
 * through, is announced in its service file's change ring; the feed reads
 * the ring — right after the server's own writes, and on the futex wake-up
 * for writes by local processes — and hands each change once to the
 * listeners of that service.
 */
import type { OwnedServiceFile, VariableChange, VersionedValue } from "../shm/index.js";
import { ShmError } from "../shm/index.js";

/**
 * A value read once for all the listeners that want it. `memo` keeps what
 * a transport derives from the value for all of them (its wire encodings;
 * the transport owns its shape), so that a change of a variable with many
 * subscribers is encoded once.
 */
export interface SharedValue extends VersionedValue {
  memo: unknown;
}

/** Reads a variable's current value once per dispatch, whoever asks. */
export type ValueReader = (name: string) => SharedValue | undefined;

/** Someone interested in the changes of services. */
export interface ChangeListener {
  /** Changes of one service, in ring order; `read` shares one read per variable among listeners. */
  onChanges(serviceId: string, changes: readonly VariableChange[], read: ValueReader): void;
  /** The service is gone. */
  onServiceDeleted(serviceId: string): void;
}

/**
 * Bytes of reads a feed keeps from one dispatch to the next (values, their
 * encodings and their entries). Values read during a dispatch are shared
 * by all its listeners whatever their size; past this, they are let go at
 * its end.
 */
const KEPT_VALUE_BYTES = 256 * 1024;

/** What a kept read costs besides its value, near enough: so that many empty values are bounded too. */
const ENTRY_BYTES = 64;
/** Copies of a kept read's value in memory: the read and its memo (see keptBytes). */
const KEPT_COPIES = 3;

interface Feed {
  file: OwnedServiceFile;
  listeners: Set<ChangeListener>;
  stopWatching: () => void;
  /**
   * Values read and not announced as changed since, by variable name. Each
   * is at least as new as the last change the feed announced of its
   * variable, so any listener may take it as the current value until a
   * dispatch announces another.
   */
  values: Map<string, SharedValue | undefined>;
  valueBytes: number;
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
      feed = { file, listeners: new Set(), stopWatching, values: new Map(), valueBytes: 0 };
      this.#feeds.set(serviceId, feed);
    }
    feed.listeners.add(listener);
    return () => this.#unlisten(serviceId, listener);
  }

  /**
   * A variable's value for a listener catching up on changes it coalesced:
   * the one already read for the other listeners when it has not changed
   * since, so that a change reaching many subscribers late is
   * still read (and encoded by transports) once.
   */
  read(serviceId: string, file: OwnedServiceFile, name: string): SharedValue | undefined {
    const feed = this.#feeds.get(serviceId);
    if (feed === undefined) return shareable(readQuietly(file, name));
    if (feed.valueBytes > KEPT_VALUE_BYTES && !feed.values.has(name))
      return shareable(readQuietly(file, name));
    return readShared(feed, name);
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
    const latest = latestPerVariable(changes);
    // Values read before these changes may be older than they announce;
    // the others are still current, and listeners that are behind read them.
    for (const change of latest) {
      if (!feed.values.has(change.name)) continue;
      feed.valueBytes -= keptBytes(feed.values.get(change.name));
      feed.values.delete(change.name);
    }
    const read: ValueReader = (name) => readShared(feed, name);
    for (const listener of feed.listeners) listener.onChanges(serviceId, latest, read);
    if (feed.valueBytes > KEPT_VALUE_BYTES) {
      feed.values.clear();
      feed.valueBytes = 0;
    }
  }
}

/**
 * The changes without writes that a later write of the same variable
 * supersedes. Listeners read the value as it is now, so an older write
 * would only be read and skipped again by each of them; when writers
 * outpace the server, one drain of the ring holds many writes per variable
 * and this keeps the work per listener at one per variable. Deletes stay,
 * and so does the last write before each (a variable made anew is another
 * variable to a subscriber).
 */
export function latestPerVariable(changes: readonly VariableChange[]): readonly VariableChange[] {
  if (changes.length < 2) return changes;
  const written = new Set<string>();
  const kept: VariableChange[] = [];
  for (let i = changes.length - 1; i >= 0; i--) {
    const change = changes[i] as VariableChange;
    if (change.kind === "delete") {
      written.delete(change.name);
      kept.push(change);
    } else if (!written.has(change.name)) {
      written.add(change.name);
      kept.push(change);
    }
  }
  return kept.length === changes.length ? changes : kept.reverse();
}

function readShared(feed: Feed, name: string): SharedValue | undefined {
  if (feed.values.has(name)) return feed.values.get(name);
  const value = shareable(readQuietly(feed.file, name));
  feed.values.set(name, value);
  feed.valueBytes += keptBytes(value);
  return value;
}

/**
 * A kept read holds its value and what transports derive from it for all
 * listeners (`memo`: the Watch encodings are the value's bytes twice more,
 * its fields and a whole envelope), near enough.
 */
function keptBytes(value: SharedValue | undefined): number {
  return (value?.data.length ?? 0) * KEPT_COPIES + ENTRY_BYTES;
}

function shareable(value: VersionedValue | undefined): SharedValue | undefined {
  return value === undefined
    ? undefined
    : { data: value.data, version: value.version, memo: undefined };
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
