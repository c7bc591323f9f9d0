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
import {
  type ChangeListener,
  type SharedValue,
  type ValueReader,
  readQuietly,
} from "./change-feed.js";
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
  /** The read this update came from when other subscribers may share it (see SharedValue). */
  source: SharedValue | undefined;
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

/** Limits, and who is told when a slow consumer's changes are coalesced (metrics). */
export type WatchSessionOptions = Partial<WatchSessionLimits> & {
  onCoalesced?: (versionsSkipped: number) => void;
};

export const DEFAULT_WATCH_LIMITS: WatchSessionLimits = {
  maxReadyEvents: 1024,
  maxReadyBytes: 4 * 1024 * 1024,
  stallLimitMs: 30_000,
  progressIntervalMs: 10_000,
  maxSubscriptions: 1000,
};

/** Changes handed to the consumer in one go, at most. */
const MAX_BATCH = 256;

/**
 * Kept small: a session may hold a thousand of these, and most follow one
 * variable (what they share lives in their ServiceGroup).
 */
interface ActiveSubscription {
  id: number;
  group: ServiceGroup;
  /** "" for every variable of the service. */
  variableName: string;
  /** One variable: the last version sent (undefined: none yet). */
  lastSent: number | undefined;
  /** Every variable: the last version sent per variable, made at the first. */
  sent: Map<string, number> | undefined;
  /** Variables with a change coalesced, waiting for room (in arrival order); made at the first. */
  pending: Set<string> | undefined;
}

/** The subscriptions of one session on one service, indexed for matching changes. */
interface ServiceGroup {
  tenantId: string;
  serviceName: string;
  serviceId: string;
  file: OwnedServiceFile;
  /**
   * Stops this session's one listener on the feed. The feed knows the
   * session once, however many of its subscriptions follow the service.
   */
  stopListening: () => void;
  wholeService: ActiveSubscription[];
  byVariable: Map<string, ActiveSubscription[]>;
  size: number;
}

export class WatchSession implements ChangeListener {
  readonly #core: CommyCore;
  readonly #caller: Caller;
  readonly #limits: WatchSessionLimits;
  readonly #onCoalesced: ((versionsSkipped: number) => void) | undefined;
  readonly #subscriptions = new Map<number, ActiveSubscription>();
  readonly #groups = new Map<string, ServiceGroup>();
  #ready: SessionEvent[] = [];
  /** Bytes of values in #ready. */
  #readyBytes = 0;
  /**
   * Subscriptions with coalesced changes waiting for room, in the order
   * their first one came; the names are in each subscription's `pending`.
   */
  readonly #pending = new Set<ActiveSubscription>();
  #nextId = 1;
  #writes: Promise<void> = Promise.resolve();
  #writesInFlight = 0;
  /** Wakes whoever waits for events: take()'s promise, or #scheduleReady (onReady). */
  #wake: (() => void) | undefined;
  /** The transport's callback in push form (onReady), and whether it runs next turn. */
  #onReady: (() => void) | undefined;
  #readyScheduled = false;
  #endedWith: CommyError | undefined;
  #closed = false;
  #lastTake = Date.now();
  #sentSinceProgress = false;
  #lastProgress = Date.now();
  readonly #timer: NodeJS.Timeout;
  /** Resolvers of `room()` callers waiting for the outbox to drain. */
  #roomWaiters: (() => void)[] = [];
  readonly #onRevoked: () => void;

  constructor(core: CommyCore, caller: Caller, options: WatchSessionOptions = {}) {
    this.#core = core;
    this.#caller = caller;
    const { onCoalesced, ...limits } = options;
    this.#limits = { ...DEFAULT_WATCH_LIMITS, ...limits };
    this.#onCoalesced = onCoalesced;
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
      const group = this.#groups.get(opened.serviceId) ?? this.#openGroup(request, opened);
      const subscription: ActiveSubscription = {
        id: this.#nextId++,
        group,
        variableName: request.variableName,
        lastSent: undefined,
        sent: undefined,
        pending: undefined,
      };
      this.#subscriptions.set(subscription.id, subscription);
      addTo(group, subscription);
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
      const events = this.takeNow();
      if (events === undefined || events.length > 0) return events;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
      // It waited for events, so it did not stall (#checkStall may run before the next loop).
      this.#lastTake = Date.now();
      // Woken by the first event: let the rest of this turn's writes (all
      // the commands of one read from a socket, say) come too, so that they
      // leave in one batch. Past a few writes per turn, sending every
      // event alone costs more than the server can give, and the backlog
      // would grow in the writers' streams instead.
      if (!this.#closed) await nextTurn();
    }
  }

  /**
   * What take() would give now, without waiting: no events yet ([]), some,
   * or undefined once the session has ended and everything was taken.
   */
  takeNow(): SessionEvent[] | undefined {
    this.#lastTake = Date.now();
    const events = this.#takeReady();
    if (this.#roomWaiters.length > 0 && this.#ready.length < this.#limits.maxReadyEvents) {
      this.#releaseRoomWaiters();
    }
    return events.length === 0 && this.#closed ? undefined : events;
  }

  /**
   * take()'s push form, for a transport that writes without waiting (the
   * HTTP/2 path): `ready` runs once in the next turn of the event loop
   * after events come (or the session ends), and takes them with
   * takeNow(); it stays set until replaced. Unset while the transport
   * cannot write (full buffers): the session then counts as not taking,
   * for the stall limit, as when nobody awaits take(). No promise per
   * delivery: a change of a variable with a hundred subscribers wakes a
   * hundred sessions.
   */
  onReady(ready: (() => void) | undefined): void {
    this.#onReady = ready;
    this.#wake = ready === undefined ? undefined : this.#scheduleReady;
    if (ready !== undefined && (this.#ready.length > 0 || this.#pending.size > 0 || this.#closed)) {
      this.#scheduleReady();
    }
  }

  readonly #scheduleReady = (): void => {
    if (this.#readyScheduled) return;
    this.#readyScheduled = true;
    onNextTurn(this.#runReady);
  };
  readonly #runReady = (): void => {
    this.#readyScheduled = false;
    this.#onReady?.();
  };

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
    const group = this.#groups.get(serviceId);
    if (group === undefined || this.#closed) return;
    // Every subscription of the group is on the same service: one check.
    if (!this.#stillPermitted(group)) {
      for (const subscription of membersOf(group)) this.#endUnpermitted(subscription);
      this.#wake?.();
      return;
    }
    for (const change of changes) {
      const followers = group.byVariable.get(change.name);
      if (change.kind === "delete") {
        // Ending a one-variable subscription takes it out of these lists.
        for (const subscription of [...(followers ?? []), ...group.wholeService])
          this.#deleted(subscription, change);
        continue;
      }
      if (followers !== undefined) {
        for (const subscription of followers)
          this.#changed(subscription, change.name, change.version, read);
      }
      for (const subscription of group.wholeService)
        this.#changed(subscription, change.name, change.version, read);
    }
    this.#checkStall();
    this.#wake?.();
  }

  onServiceDeleted(serviceId: string): void {
    const group = this.#groups.get(serviceId);
    if (group === undefined) return;
    const reason = notFound(`service ${group.serviceName} in tenant ${group.tenantId}`);
    for (const subscription of membersOf(group)) this.#end(subscription, reason);
  }

  // ---- internals ----

  #openGroup(
    request: SubscriptionRequest,
    opened: { serviceId: string; file: OwnedServiceFile },
  ): ServiceGroup {
    const group: ServiceGroup = {
      tenantId: request.tenantId,
      serviceName: request.serviceName,
      serviceId: opened.serviceId,
      file: opened.file,
      stopListening: () => undefined,
      wholeService: [],
      byVariable: new Map(),
      size: 0,
    };
    this.#groups.set(opened.serviceId, group);
    group.stopListening = this.#core.feed.listen(opened.serviceId, opened.file, this);
    return group;
  }

  #snapshot(subscription: ActiveSubscription, request: SubscriptionRequest): void {
    const file = subscription.group.file;
    const names =
      subscription.variableName === ""
        ? file.list().map((v) => v.name)
        : [subscription.variableName];
    for (const name of names) {
      const from =
        subscription.variableName === "" ? request.fromVersions?.[name] : request.fromVersion;
      const value = readQuietly(file, name);
      if (value === undefined) continue;
      // Resuming: nothing new, or only what came after the version seen.
      // A current version below it means the variable was created anew.
      if (from !== undefined && value.version === from) {
        setSent(subscription, name, from);
        continue;
      }
      if (from !== undefined && value.version > from) setSent(subscription, name, from);
      this.#capture(subscription, name, value, "snapshot");
    }
  }

  #changed(
    subscription: ActiveSubscription,
    name: string,
    version: number,
    read: ValueReader,
  ): void {
    if (
      this.#pending.size > 0 ||
      this.#ready.length >= this.#limits.maxReadyEvents ||
      this.#readyBytes >= this.#limits.maxReadyBytes
    ) {
      // Coalescing: the version is checked when the value is read (#capture),
      // one lookup less per change while a consumer is behind.
      (subscription.pending ??= new Set()).add(name);
      this.#pending.add(subscription);
      return;
    }
    const last = sentOf(subscription, name);
    if (last !== undefined && version <= last) return;
    const value = read(name);
    if (value !== undefined) this.#captureAfter(subscription, name, value, "update", last);
  }

  #deleted(subscription: ActiveSubscription, change: VariableChange): void {
    if (subscription.pending?.delete(change.name) === true && subscription.pending.size === 0)
      this.#pending.delete(subscription);
    const last = sentOf(subscription, change.name) ?? change.version;
    forgetSent(subscription, change.name);
    this.#push({
      type: "change",
      change: this.#event(
        subscription,
        change.name,
        new Uint8Array(0),
        last,
        0,
        "deleted",
        undefined,
      ),
    });
    if (subscription.variableName !== "") {
      this.#end(subscription, notFound(`variable ${change.name}`));
    }
  }

  #capture(
    subscription: ActiveSubscription,
    name: string,
    value: VersionedValue | SharedValue,
    kind: ChangeEvent["kind"],
  ): void {
    this.#captureAfter(subscription, name, value, kind, sentOf(subscription, name));
  }

  /** #capture when the caller has looked up the last version sent (`last`) already. */
  #captureAfter(
    subscription: ActiveSubscription,
    name: string,
    value: VersionedValue | SharedValue,
    kind: ChangeEvent["kind"],
    last: number | undefined,
  ): void {
    if (last !== undefined && value.version <= last) return;
    const skipped = last === undefined ? 0 : value.version - last - 1;
    if (skipped > 0) this.#onCoalesced?.(skipped);
    setSent(subscription, name, value.version);
    this.#push({
      type: "change",
      change: this.#event(
        subscription,
        name,
        value.data,
        value.version,
        skipped,
        kind,
        "memo" in value ? value : undefined,
      ),
    });
  }

  #event(
    subscription: ActiveSubscription,
    name: string,
    data: Uint8Array,
    version: number,
    skipped: number,
    kind: ChangeEvent["kind"],
    source: SharedValue | undefined,
  ): ChangeEvent {
    return {
      subscriptionId: subscription.id,
      tenantId: subscription.group.tenantId,
      serviceName: subscription.group.serviceName,
      variableName: name,
      data,
      version,
      skipped,
      kind,
      source,
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
    // Coalesced changes: the value now, as late as possible (as of the
    // feed's last read of the change ring).
    for (const subscription of this.#pending) {
      const names = subscription.pending as Set<string>;
      const { serviceId, file } = subscription.group;
      for (const name of names) {
        names.delete(name);
        const value = this.#core.feed.read(serviceId, file, name);
        if (value !== undefined) this.#capture(subscription, name, value, "update");
        if (this.#ready.length >= MAX_BATCH) break;
      }
      if (names.size === 0) this.#pending.delete(subscription);
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
    if (!this.#subscriptions.delete(subscription.id)) return;
    const group = subscription.group;
    removeFrom(group, subscription);
    if (group.size === 0) {
      this.#groups.delete(group.serviceId);
      group.stopListening();
    }
    this.#pending.delete(subscription);
    subscription.pending = undefined;
  }

  #stillPermitted(group: ServiceGroup): boolean {
    const principal = this.#caller.principal;
    return (
      principal !== undefined &&
      permits(principal, "variable.subscribe", {
        tenantId: group.tenantId,
        serviceName: group.serviceName,
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

function addTo(group: ServiceGroup, subscription: ActiveSubscription): void {
  group.size++;
  if (subscription.variableName === "") {
    group.wholeService.push(subscription);
    return;
  }
  const followers = group.byVariable.get(subscription.variableName);
  if (followers === undefined) group.byVariable.set(subscription.variableName, [subscription]);
  else followers.push(subscription);
}

function removeFrom(group: ServiceGroup, subscription: ActiveSubscription): void {
  group.size--;
  const list =
    subscription.variableName === ""
      ? group.wholeService
      : group.byVariable.get(subscription.variableName);
  if (list === undefined) return;
  const at = list.indexOf(subscription);
  if (at >= 0) list.splice(at, 1);
  if (list.length === 0 && subscription.variableName !== "")
    group.byVariable.delete(subscription.variableName);
}

/** Every subscription of a group in the order they were made, as a copy that survives ending them. */
function membersOf(group: ServiceGroup): ActiveSubscription[] {
  return [...group.wholeService, ...[...group.byVariable.values()].flat()].sort(
    (a, b) => a.id - b.id,
  );
}

/** Sessions waiting for the next turn of the event loop (see `take()` and `onReady()`). */
let waitingForNextTurn: (() => void)[] = [];

/**
 * Runs `run` in the next turn of the event loop. A write to a variable with
 * a hundred subscribers wakes a hundred sessions: one setImmediate serves
 * them all.
 */
function onNextTurn(run: () => void): void {
  if (waitingForNextTurn.length === 0) setImmediate(runNextTurn);
  waitingForNextTurn.push(run);
}

function runNextTurn(): void {
  const waiting = waitingForNextTurn;
  waitingForNextTurn = [];
  for (const run of waiting) run();
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => onNextTurn(resolve));
}

function sentOf(subscription: ActiveSubscription, name: string): number | undefined {
  return subscription.variableName === "" ? subscription.sent?.get(name) : subscription.lastSent;
}

function setSent(subscription: ActiveSubscription, name: string, version: number): void {
  if (subscription.variableName !== "") subscription.lastSent = version;
  else (subscription.sent ??= new Map()).set(name, version);
}

function forgetSent(subscription: ActiveSubscription, name: string): void {
  if (subscription.variableName !== "") subscription.lastSent = undefined;
  else subscription.sent?.delete(name);
}

function bytesOf(event: SessionEvent): number {
  return event.type === "change" ? event.change.data.length : 0;
}

function asCommyError(error: unknown): CommyError {
  if (error instanceof CommyError) return error;
  return new CommyError("INTERNAL_ERROR", "internal error", { cause: error });
}
