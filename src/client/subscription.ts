/**
 * A subscription to the changes of one variable or of a whole service, as
 * an async iterable that survives lost connections: it remembers the last
 * version it delivered of each variable and, when the stream breaks,
 * subscribes again from there (WatchService.Subscribe with from_version /
 * from_versions), so nothing is lost and nothing comes twice. Versions that
 * changed while it was away arrive as one change with `skipped` counting
 * the ones in between (docs/streaming.md, "Resume").
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions as ConnectCallOptions } from "@connectrpc/connect";
import {
  type Change,
  ChangeKind,
  type SubscribeRequestSchema,
  type SubscribeResponse,
} from "../../gen/commy/v1/watch_pb.js";
import { CommyError, type ErrorCode, fromErrorDetail, toCommyError } from "./client-errors.js";

/** What to follow. */
export interface SubscribeTarget {
  tenantId: string;
  serviceName: string;
  /** One variable; omitted or "" for every variable of the service, including later ones. */
  variableName?: string;
  /** One variable: the last version already seen; only newer ones are delivered. */
  fromVersion?: number;
  /** A whole service: the last version already seen of each variable, by name. */
  fromVersions?: Readonly<Record<string, number>>;
}

/** How a subscription reconnects after its stream broke. */
export interface ReconnectPolicy {
  /** Consecutive failed tries after which the iteration fails with the last error. Default 20. */
  maxAttempts: number;
  /** Pause before the first try; it doubles after each failure. Default 100 ms. */
  initialBackoffMs: number;
  /** Longest pause between tries. Default 5 s. */
  maxBackoffMs: number;
}

/** The reconnect policy a subscription uses unless told otherwise. */
export const DEFAULT_RECONNECT_POLICY: ReconnectPolicy = {
  maxAttempts: 20,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
};

/** Options of `CommyClient.subscribe`. */
export interface SubscribeOptions {
  /** Ends the subscription: the iteration finishes quietly. */
  signal?: AbortSignal;
  /** Overrides parts of the client's reconnect policy. */
  reconnect?: Partial<ReconnectPolicy>;
  /** Told each time the stream broke and is about to be opened again, with why. */
  onReconnect?: (error: CommyError, attempt: number) => void;
}

/** What happened to a variable. */
export type ChangeKindName = "snapshot" | "update" | "deleted";

/** One change of a subscribed variable. */
export interface VariableChange {
  variableName: string;
  /** The value at `version`; empty for a deletion. */
  data: Uint8Array;
  version: number;
  /** Versions since the previous change of this variable that were not delivered (coalesced). */
  skipped: number;
  /** "snapshot": the value when the subscription started; "update": a new value; "deleted": gone. */
  kind: ChangeKindName;
}

/** Opens one Subscribe stream (internal: the client binds it to its transport). */
export type OpenSubscribeStream = (
  request: MessageInitShape<typeof SubscribeRequestSchema>,
  options: ConnectCallOptions,
) => AsyncIterable<SubscribeResponse>;

/** Failures after which subscribing again can succeed. */
const RESUMABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "CONNECTION_LOST",
  "TIMEOUT",
  // A stalled subscriber is cut off with it; it may come back (docs/streaming.md §4).
  "RESOURCE_EXHAUSTED",
  "INTERNAL_ERROR",
]);

const KIND_NAMES: Partial<Record<ChangeKind, ChangeKindName>> = {
  [ChangeKind.SNAPSHOT]: "snapshot",
  [ChangeKind.UPDATE]: "update",
  [ChangeKind.DELETED]: "deleted",
};

/**
 * The changes of a variable or a service, in version order per variable,
 * across reconnects. Iterate it once (`for await`); breaking out of the
 * loop, `close()` or the signal ends it. It fails with a CommyError when
 * subscribing is refused (NOT_FOUND, PERMISSION_DENIED, UNAUTHORIZED, …),
 * when the server ends it for another reason than a deletion, or after the
 * reconnect policy's tries are used up. When what it follows is deleted it
 * delivers the "deleted" change (one variable) and then finishes.
 */
export class Subscription implements AsyncIterable<VariableChange> {
  readonly #open: OpenSubscribeStream;
  readonly #target: SubscribeTarget;
  readonly #policy: ReconnectPolicy;
  readonly #onReconnect: SubscribeOptions["onReconnect"];
  readonly #stop = new AbortController();
  readonly #versions = new Map<string, number>();
  #iterated = false;
  #reconnects = 0;

  /** @internal Made by CommyClient.subscribe. */
  constructor(
    open: OpenSubscribeStream,
    target: SubscribeTarget,
    options: SubscribeOptions,
    policy: ReconnectPolicy,
  ) {
    this.#open = open;
    this.#target = target;
    this.#policy = { ...policy, ...options.reconnect };
    this.#onReconnect = options.onReconnect;
    const variable = target.variableName ?? "";
    if (variable !== "" && target.fromVersion !== undefined) {
      this.#versions.set(variable, target.fromVersion);
    }
    for (const [name, version] of Object.entries(target.fromVersions ?? {})) {
      this.#versions.set(name, version);
    }
    const signal = options.signal;
    if (signal?.aborted === true) this.#stop.abort();
    signal?.addEventListener("abort", () => this.#stop.abort(), { once: true });
  }

  /** The last version delivered of each variable (where a resume starts from). */
  get lastVersions(): ReadonlyMap<string, number> {
    return this.#versions;
  }

  /** How many times the stream was opened again after it broke. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Ends the subscription; a waiting iteration finishes quietly. */
  close(): void {
    this.#stop.abort();
  }

  /** The changes, in order per variable, resuming by itself after a lost connection; once only. */
  [Symbol.asyncIterator](): AsyncIterator<VariableChange> {
    if (this.#iterated) throw new Error("a Subscription can be iterated only once");
    this.#iterated = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<VariableChange> {
    const signal = this.#stop.signal;
    let failures = 0;
    try {
      while (!signal.aborted) {
        let lost: CommyError;
        try {
          for await (const response of this.#open(this.#request(), { signal, timeoutMs: 0 })) {
            // The stream works: the next break starts a fresh series of tries.
            failures = 0;
            const event = response.event;
            if (event.case === "changes") {
              for (const change of event.value.changes) {
                const delivered = this.#accept(change);
                if (delivered !== undefined) yield delivered;
              }
            } else if (event.case === "ended") {
              const ended = fromErrorDetail(
                event.value.reason,
                "the server ended the subscription",
              );
              if (ended.code === "NOT_FOUND") return;
              // Resumable or not, this stream is done: the catch below decides.
              throw ended;
            }
          }
          lost = new CommyError("CONNECTION_LOST", "the server ended the subscription stream");
        } catch (error) {
          if (signal.aborted) return;
          if (error instanceof CommyError && !RESUMABLE.has(error.code)) throw error;
          lost = toCommyError(error);
          if (!RESUMABLE.has(lost.code)) throw lost;
        }
        failures++;
        if (failures > this.#policy.maxAttempts) throw lost;
        const pause = Math.min(
          this.#policy.initialBackoffMs * 2 ** (failures - 1),
          this.#policy.maxBackoffMs,
        );
        try {
          await sleep(pause * (0.5 + Math.random() / 2), undefined, { signal });
        } catch {
          return;
        }
        this.#reconnects++;
        this.#onReconnect?.(lost, failures);
      }
    } finally {
      // Ends the stream when the consumer stops early.
      this.#stop.abort();
    }
  }

  /** The Subscribe request that (re)starts after the last versions delivered. */
  #request(): MessageInitShape<typeof SubscribeRequestSchema> {
    const { tenantId, serviceName } = this.#target;
    const variableName = this.#target.variableName ?? "";
    if (variableName !== "") {
      const last = this.#versions.get(variableName);
      return {
        subscriptions: [
          {
            tenantId,
            serviceName,
            variableName,
            fromVersion: last === undefined ? undefined : BigInt(last),
          },
        ],
      };
    }
    const fromVersions: Record<string, bigint> = {};
    for (const [name, version] of this.#versions) fromVersions[name] = BigInt(version);
    return { subscriptions: [{ tenantId, serviceName, variableName, fromVersions }] };
  }

  /** The change to deliver, or undefined for one already delivered (a resume overlap). */
  #accept(change: Change): VariableChange | undefined {
    const name = change.variableName;
    const version = Number(change.version);
    const kind = KIND_NAMES[change.kind] ?? "update";
    if (kind === "deleted") {
      // A variable allocated again under this name starts over at version 1.
      this.#versions.delete(name);
    } else {
      const last = this.#versions.get(name);
      if (last !== undefined && version <= last) return undefined;
      this.#versions.set(name, version);
    }
    return {
      variableName: name,
      data: change.data,
      version,
      skipped: Number(change.skipped),
      kind,
    };
  }
}
