/**
 * The server's Prometheus metrics (prom-client, on its own registry so that
 * two servers in one process do not mix). Gauges are read from their
 * sources at scrape time; counters are bumped where things happen. Hot
 * paths keep the labelled children they use, so a count is a map lookup
 * and an addition.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** What gauges read at scrape time. */
export interface GaugeSources {
  /** Open client connections by transport ("http1", "http2", "websocket"). */
  connections(): Record<string, number>;
  /** Open Watch/Subscribe streams. */
  streams(): number;
  /** Subscriptions held by all streams (Watch and the bridge's extended mode). */
  subscriptions(): number;
  /** Legacy WebSocket connections by mode ("legacy", "extended"). */
  bridgeConnections(): Record<string, number>;
  /** Bytes of service files mapped by the server. */
  mappedBytes(): number;
}

/** Latency buckets (seconds) for calls that take from tens of µs to seconds. */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

interface Bumpable {
  inc(value?: number): void;
}
interface Observable {
  observe(value: number): void;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #rpcHandled: Counter<"method" | "code">;
  readonly #rpcSeconds: Histogram<"method">;
  readonly #bridgeMessages: Counter<"type" | "result">;
  readonly #coalesced: Counter;
  readonly #growths: Counter;
  readonly #audit: Counter<"action" | "outcome">;
  readonly #children = new Map<string, Bumpable>();
  readonly #timers = new Map<string, Observable>();

  constructor(sources: GaugeSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: "commy_" });
    this.#rpcHandled = new Counter({
      name: "commy_rpc_handled_total",
      help: "RPCs completed, by method (/package.Service/Method) and status code",
      labelNames: ["method", "code"],
      registers,
    });
    this.#rpcSeconds = new Histogram({
      name: "commy_rpc_duration_seconds",
      help: "Time from an RPC's start to its end (streams: their whole life)",
      labelNames: ["method"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#bridgeMessages = new Counter({
      name: "commy_bridge_messages_total",
      help: "Legacy WebSocket messages answered or handled, by type and result (ok or error code)",
      labelNames: ["type", "result"],
      registers,
    });
    this.#coalesced = new Counter({
      name: "commy_watch_coalesced_versions_total",
      help: "Versions a slow subscriber skipped because changes of a variable were coalesced",
      registers,
    });
    this.#growths = new Counter({
      name: "commy_service_file_growths_total",
      help: "Times a service file grew",
      registers,
    });
    this.#audit = new Counter({
      name: "commy_audit_events_total",
      help: "Audit events recorded, by action and outcome",
      labelNames: ["action", "outcome"],
      registers,
    });
    const connections = new Gauge({
      name: "commy_open_connections",
      help: "Open client connections by transport",
      labelNames: ["transport"],
      registers,
      collect() {
        for (const [transport, count] of Object.entries(sources.connections())) {
          this.set({ transport }, count);
        }
      },
    });
    const bridge = new Gauge({
      name: "commy_bridge_connections",
      help: "Open legacy WebSocket connections by mode",
      labelNames: ["mode"],
      registers,
      collect() {
        for (const [mode, count] of Object.entries(sources.bridgeConnections())) {
          this.set({ mode }, count);
        }
      },
    });
    const streams = new Gauge({
      name: "commy_open_streams",
      help: "Open Watch and Subscribe streams",
      registers,
      collect() {
        this.set(sources.streams());
      },
    });
    const subscriptions = new Gauge({
      name: "commy_subscriptions",
      help: "Subscriptions held by open streams",
      registers,
      collect() {
        this.set(sources.subscriptions());
      },
    });
    const mapped = new Gauge({
      name: "commy_service_files_mapped_bytes",
      help: "Bytes of service files the server maps",
      registers,
      collect() {
        this.set(sources.mappedBytes());
      },
    });
    void [connections, bridge, streams, subscriptions, mapped];
  }

  /** Counts a finished RPC and its duration. */
  rpcHandled(method: string, code: string, seconds: number): void {
    this.#child(this.#rpcHandled, "rpc", method, code).inc();
    let timer = this.#timers.get(method);
    if (timer === undefined) {
      timer = this.#rpcSeconds.labels(method);
      this.#timers.set(method, timer);
    }
    timer.observe(seconds);
  }

  /** Counts a legacy bridge message by its result ("ok" or the error code). */
  bridgeMessage(type: string, result: string): void {
    this.#child(this.#bridgeMessages, "bridge", type, result).inc();
  }

  coalescedVersions(count: number): void {
    this.#coalesced.inc(count);
  }

  serviceFileGrew(): void {
    this.#growths.inc();
  }

  auditEvent(action: string, outcome: string): void {
    this.#child(this.#audit, "audit", action, outcome).inc();
  }

  /** The exposition text and its content type, for GET /metrics. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #child<L extends string>(counter: Counter<L>, family: string, a: string, b: string): Bumpable {
    const key = `${family}\u0000${a}\u0000${b}`;
    let child = this.#children.get(key);
    if (child === undefined) {
      child = counter.labels(a, b);
      this.#children.set(key, child);
    }
    return child;
  }
}
