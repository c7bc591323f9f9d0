/**
 * One subscriber's stream, independent of the transport (Connect Watch and
 * Subscribe, the legacy bridge's extended mode): subscriptions, writes,
 * pings, and an outbox that never grows without bound. While the consumer
 * keeps up, every change is captured with its value at once (so it sees
 * every version); once it falls behind, changes of the same variable are
 * coalesced and the value is read when it can be sent, with the number of
 * versions skipped.
 */
import type { OwnedServiceFile, VariableChange, VersionedValue } from "../shm/index.js";
import { permits } from "./authorizer.js";
import type { Caller } from "./caller.js";
import { type ChangeListener, type ValueReader, readQuietly } from "./change-feed.js";
import type { CommyCore, WriteRequest } from "./commy-core.js";
import { CommyError, notFound } from "./commy-error.js";

/** What to subscribe to (see proto commy.v1.Subscription). */
export interface SubscriptionRequest {
  tenantId: string;
  serviceName: string;
  /** "" for every variable of the service. */
  variableName: string;
  fromVersion?: number;
  fromVersions?: Record<string, number>;
}

export interface ChangeEvent {
  subscriptionId: number;
  tenantId: string;
  serviceName: string;
  variableName: string;
  data: Uint8Array;
  version: number;
  skipped: number;
  kind: "snapshot" | "update" | "deleted";
}

/** What the session tells its consumer, in order. */
export type SessionEvent =
  | {
      type: "reply";
      requestId: string;
      error?: CommyError;
      subscriptionId?: number;
      version?: number;
    }
  | { type: "change"; change: ChangeEvent }
  | { type: "pong"; requestId: string }
  | { type: "progress"; subscriptionIds: number[] }
  | { type: "ended"; subscriptionId: number; reason: CommyError };

export interface WatchSessionLimits {
  /** Events captured ahead of the consumer before coalescing starts. */
  maxReadyEvents: number;
  /** Bytes of captured values held for a slow consumer before coalescing starts. */
  maxReadyBytes: number;
  /** A consumer that takes nothing for this long while changes wait is cut off. */
  stallLimitMs: number;
  /** Progress messages on idle subscriptions this often (0: never). */
  progressIntervalMs: number;
  /** Subscriptions one session may hold. */
  maxSubscriptions: number;
}

export const DEFAULT_WATCH_LIMITS: WatchSessionLimits = {
  maxReadyEvents: 1024,
  maxReadyBytes: 4 * 1024 * 1024,
  stallLimitMs: 30_000,
  progressIntervalMs: 10_000,
  maxSubscriptions: 1000,
};

/** Changes handed to the consumer in one go, at most. */
const MAX_BATCH = 256;

interface ActiveSubscription {
  id: number;
  tenantId: string;
  serviceName: string;
  serviceId: string;
  variableName: string;
  file: OwnedServiceFile;
  /** Last version sent, per variable name. */
  sent: Map<string, number>;
}

export class WatchSession implements ChangeListener {
  readonly #core: CommyCore;
  readonly #caller: Caller;
  readonly #limits: WatchSessionLimits;
  readonly #subscriptions = new Map<number, ActiveSubscription>();
  readonly #byService = new Map<string, Set<ActiveSubscription>>();
  /**
   * Per service: stops this session's one listener on the feed. The feed
   * knows the session once, however many of its subscriptions follow the
   * service, so it stops listening only when the last of them is dropped.
   */
  readonly #stopListening = new Map<string, () => void>();
  #ready: SessionEvent[] = [];
  /** Bytes of values in #ready. */
  #readyBytes = 0;
  /** Coalesced changes waiting for room: subscription id → variable names, in arrival order. */
  readonly #pending = new Map<string, { subscription: ActiveSubscription; name: string }>();
  #nextId = 1;
  #writes: Promise<void> = Promise.resolve();
  #writesInFlight = 0;
  #wake: (() => void) | undefined;
  #endedWith: CommyError | undefined;
  #closed = false;
  #lastTake = Date.now();
  #sentSinceProgress = false;
  #lastProgress = Date.now();
  readonly #timer: NodeJS.Timeout;
  /** Resolvers of `room()` callers waiting for the outbox to drain. */
  #roomWaiters: (() => void)[] = [];
  readonly #onRevoked: () => void;

  constructor(core: CommyCore, caller: Caller, limits: Partial<WatchSessionLimits> = {}) {
    this.#core = core;
    this.#caller = caller;
    this.#limits = { ...DEFAULT_WATCH_LIMITS, ...limits };
    this.#onRevoked = () =>
      this.close(
        new CommyError("UNAUTHORIZED", "the credential of this stream was revoked or expired"),
      );
    caller.credentialSignal?.addEventListener("abort", this.#onRevoked, { once: true });
    // One timer for both the stall check and progress messages.
    const stallTick = Math.max(10, this.#limits.stallLimitMs / 2);
    const period =
      this.#limits.progressIntervalMs > 0
        ? Math.min(this.#limits.progressIntervalMs, stallTick)
        : stallTick;
    this.#timer = setInterval(() => this.#tick(), period);
    this.#timer.unref();
  }

  /**
   * Resolves once the outbox has room for more replies: a transport awaits
   * it before reading the next command, so a client that sends without
   * reading is slowed down instead of filling the server's memory.
   */
  room(): Promise<void> {
    if (this.#closed || this.#ready.length < this.#limits.maxReadyEvents) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Why the session ended, once it has (undefined: ended normally or still open). */
  get endedWith(): CommyError | undefined {
    return this.#endedWith;
  }

  /** Starts a subscription; the reply, then the snapshot, go to the outbox. */
  subscribe(requestId: string, request: SubscriptionRequest): void {
    try {
      if (this.#subscriptions.size >= this.#limits.maxSubscriptions) {
        throw new CommyError(
          "RESOURCE_EXHAUSTED",
          `at most ${this.#limits.maxSubscriptions} subscriptions per stream`,
        );
      }
      const opened = this.#core.openSubscription(this.#caller, request);
      const subscription: ActiveSubscription = {
        id: this.#nextId++,
        tenantId: request.tenantId,
        serviceName: request.serviceName,
        serviceId: opened.serviceId,
        variableName: request.variableName,
        file: opened.file,
        sent: new Map(),
      };
      this.#subscriptions.set(subscription.id, subscription);
      let group = this.#byService.get(opened.serviceId);
      if (group === undefined) {
        group = new Set();
        this.#byService.set(opened.serviceId, group);
        this.#stopListening.set(
          opened.serviceId,
          this.#core.feed.listen(opened.serviceId, opened.file, this),
        );
      }
      group.add(subscription);
      this.#push({ type: "reply", requestId, subscriptionId: subscription.id });
      this.#snapshot(subscription, request);
    } catch (error) {
      this.#push({ type: "reply", requestId, error: asCommyError(error) });
    }
  }

  unsubscribe(requestId: string, subscriptionId: number): void {
    const subscription = this.#subscriptions.get(subscriptionId);
    if (subscription === undefined) {
      this.#push({ type: "reply", requestId, error: notFound(`subscription ${subscriptionId}`) });
      return;
    }
    this.#drop(subscription);
    this.#push({ type: "reply", requestId });
  }

  /** A write through the core; the reply carries the new version. */
  write(requestId: string, request: WriteRequest): Promise<void> {
    const run = () =>
      this.#core.writeVariable(this.#caller, request).then(
        (result) => this.#push({ type: "reply", requestId, version: result.version }),
        (error: unknown) => this.#push({ type: "reply", requestId, error: asCommyError(error) }),
      );
    // Writes of one stream apply in the order sent, even when one of them
    // has to wait for a variable's lock; unhindered writes run at once.
    const settled = () => {
      this.#writesInFlight--;
    };
    this.#writes = (this.#writesInFlight === 0 ? run() : this.#writes.then(run)).finally(settled);
    this.#writesInFlight++;
    return this.#writes;
  }

  /** Answers a command that could not even be read (a transport's validation). */
  replyError(requestId: string, error: unknown): void {
    this.#push({ type: "reply", requestId, error: asCommyError(error) });
  }

  ping(requestId: string): void {
    this.#push({ type: "pong", requestId });
  }

  /**
   * The next events, waiting until there are some; undefined once the
   * session has ended and everything ready was taken.
   */
  async take(): Promise<SessionEvent[] | undefined> {
    for (;;) {
      this.#lastTake = Date.now();
      const events = this.#takeReady();
      if (this.#roomWaiters.length > 0 && this.#ready.length < this.#limits.maxReadyEvents) {
        this.#releaseRoomWaiters();
      }
      if (events.length > 0) return events;
      if (this.#closed) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  /** Ends the session (with a reason when the server ends it). */
  close(reason?: CommyError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#endedWith ??= reason;
    clearInterval(this.#timer);
    this.#releaseRoomWaiters();
    this.#caller.credentialSignal?.removeEventListener("abort", this.#onRevoked);
    for (const subscription of [...this.#subscriptions.values()]) this.#drop(subscription);
    if (reason !== undefined) {
      // A forced end: what was queued is not worth delivering first.
      this.#ready = [];
      this.#readyBytes = 0;
      this.#pending.clear();
    }
    this.#wake?.();
  }

  /** Subscriptions this session holds (metrics). */
  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  // ---- ChangeListener ----

  onChanges(serviceId: string, changes: readonly VariableChange[], read: ValueReader): void {
    const group = this.#byService.get(serviceId);
    if (group === undefined || this.#closed) return;
    // Every subscription of the group is on the same service: one check.
    const first = group.values().next().value;
    if (first !== undefined && !this.#stillPermitted(first)) {
      for (const subscription of [...group]) this.#endUnpermitted(subscription);
      this.#wake?.();
      return;
    }
    for (const subscription of group) {
      for (const change of changes) {
        if (subscription.variableName !== "" && subscription.variableName !== change.name) continue;
        if (change.kind === "delete") this.#deleted(subscription, change);
        else this.#changed(subscription, change.name, change.version, read);
      }
    }
    this.#checkStall();
    this.#wake?.();
  }

  onServiceDeleted(serviceId: string): void {
    for (const subscription of [...(this.#byService.get(serviceId) ?? [])]) {
      this.#end(
        subscription,
        notFound(`service ${subscription.serviceName} in tenant ${subscription.tenantId}`),
      );
    }
  }

  // ---- internals ----

  #snapshot(subscription: ActiveSubscription, request: SubscriptionRequest): void {
    const names =
      subscription.variableName === ""
        ? subscription.file.list().map((v) => v.name)
        : [subscription.variableName];
    for (const name of names) {
      const from =
        subscription.variableName === "" ? request.fromVersions?.[name] : request.fromVersion;
      const value = readQuietly(subscription.file, name);
      if (value === undefined) continue;
      // Resuming: nothing new, or only what came after the version seen.
      // A current version below it means the variable was created anew.
      if (from !== undefined && value.version === from) {
        subscription.sent.set(name, from);
        continue;
      }
      if (from !== undefined && value.version > from) subscription.sent.set(name, from);
      this.#capture(subscription, name, value, "snapshot");
    }
  }

  #changed(
    subscription: ActiveSubscription,
    name: string,
    version: number,
    read: ValueReader,
  ): void {
    if (version <= (subscription.sent.get(name) ?? 0)) return;
    if (
      this.#pending.size === 0 &&
      this.#ready.length < this.#limits.maxReadyEvents &&
      this.#readyBytes < this.#limits.maxReadyBytes
    ) {
      const value = read(name);
      if (value !== undefined) this.#capture(subscription, name, value, "update");
      return;
    }
    const key = `${subscription.id}\0${name}`;
    if (!this.#pending.has(key)) this.#pending.set(key, { subscription, name });
  }

  #deleted(subscription: ActiveSubscription, change: VariableChange): void {
    this.#pending.delete(`${subscription.id}\0${change.name}`);
    const last = subscription.sent.get(change.name) ?? change.version;
    subscription.sent.delete(change.name);
    this.#push({
      type: "change",
      change: this.#event(subscription, change.name, new Uint8Array(0), last, 0, "deleted"),
    });
    if (subscription.variableName !== "") {
      this.#end(subscription, notFound(`variable ${change.name}`));
    }
  }

  #capture(
    subscription: ActiveSubscription,
    name: string,
    value: VersionedValue,
    kind: ChangeEvent["kind"],
  ): void {
    const last = subscription.sent.get(name);
    if (last !== undefined && value.version <= last) return;
    const skipped = last === undefined ? 0 : value.version - last - 1;
    subscription.sent.set(name, value.version);
    this.#push({
      type: "change",
      change: this.#event(subscription, name, value.data, value.version, skipped, kind),
    });
  }

  #event(
    subscription: ActiveSubscription,
    name: string,
    data: Uint8Array,
    version: number,
    skipped: number,
    kind: ChangeEvent["kind"],
  ): ChangeEvent {
    return {
      subscriptionId: subscription.id,
      tenantId: subscription.tenantId,
      serviceName: subscription.serviceName,
      variableName: name,
      data,
      version,
      skipped,
      kind,
    };
  }

  #takeReady(): SessionEvent[] {
    if (this.#ready.length > 0) {
      const events =
        this.#ready.length <= MAX_BATCH ? this.#ready : this.#ready.slice(0, MAX_BATCH);
      this.#ready = this.#ready.length <= MAX_BATCH ? [] : this.#ready.slice(MAX_BATCH);
      for (const event of events) this.#readyBytes -= bytesOf(event);
      this.#sentSinceProgress = true;
      return events;
    }
    // Coalesced changes: read the value now, as late as possible.
    for (const [key, { subscription, name }] of this.#pending) {
      this.#pending.delete(key);
      if (!this.#subscriptions.has(subscription.id)) continue;
      const value = readQuietly(subscription.file, name);
      if (value !== undefined) this.#capture(subscription, name, value, "update");
      if (this.#ready.length >= MAX_BATCH) break;
    }
    const events = this.#ready;
    this.#ready = [];
    this.#readyBytes = 0;
    if (events.length > 0) this.#sentSinceProgress = true;
    return events;
  }

  #push(event: SessionEvent): void {
    if (this.#closed) return;
    this.#ready.push(event);
    this.#readyBytes += bytesOf(event);
    this.#wake?.();
  }

  #end(subscription: ActiveSubscription, reason: CommyError): void {
    if (!this.#subscriptions.has(subscription.id)) return;
    this.#drop(subscription);
    this.#push({ type: "ended", subscriptionId: subscription.id, reason });
  }

  #drop(subscription: ActiveSubscription): void {
    this.#subscriptions.delete(subscription.id);
    const group = this.#byService.get(subscription.serviceId);
    group?.delete(subscription);
    if (group !== undefined && group.size === 0) {
      this.#byService.delete(subscription.serviceId);
      this.#stopListening.get(subscription.serviceId)?.();
      this.#stopListening.delete(subscription.serviceId);
    }
    for (const [key, entry] of this.#pending)
      if (entry.subscription === subscription) this.#pending.delete(key);
  }

  #stillPermitted(subscription: ActiveSubscription): boolean {
    const principal = this.#caller.principal;
    return (
      principal !== undefined &&
      permits(principal, "variable.subscribe", {
        tenantId: subscription.tenantId,
        serviceName: subscription.serviceName,
      })
    );
  }

  #endUnpermitted(subscription: ActiveSubscription): void {
    this.#end(
      subscription,
      new CommyError("PERMISSION_DENIED", "the permission to subscribe was revoked"),
    );
  }

  #releaseRoomWaiters(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #checkStall(): void {
    if ((this.#pending.size === 0 && this.#ready.length === 0) || this.#wake !== undefined) return;
    if (Date.now() - this.#lastTake > this.#limits.stallLimitMs) {
      this.close(
        new CommyError(
          "RESOURCE_EXHAUSTED",
          `the subscriber took nothing for ${this.#limits.stallLimitMs} ms and was cut off`,
        ),
      );
    }
  }

  #tick(): void {
    this.#checkStall();
    const interval = this.#limits.progressIntervalMs;
    if (interval <= 0 || Date.now() - this.#lastProgress < interval) return;
    this.#lastProgress = Date.now();
    if (!this.#sentSinceProgress && this.#subscriptions.size > 0 && this.#ready.length === 0) {
      this.#push({ type: "progress", subscriptionIds: [...this.#subscriptions.keys()] });
    }
    this.#sentSinceProgress = false;
  }
}

function bytesOf(event: SessionEvent): number {
  return event.type === "change" ? event.change.data.length : 0;
}

function asCommyError(error: unknown): CommyError {
  if (error instanceof CommyError) return error;
  return new CommyError("INTERNAL_ERROR", "internal error", { cause: error });
}
