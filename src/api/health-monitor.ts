/**
 * Whether the server can do its work, from probes of what it depends on
 * (the store answers, the data directory is writable, the core is open),
 * for grpc.health.v1.Health and /healthz. Probes run when asked, and every
 * few seconds while someone watches; shutdown turns the status off at once.
 */

export interface HealthProbe {
  name: string;
  /** Throws (or returns false) when the dependency is not usable. */
  check(): boolean;
}

export interface HealthReport {
  serving: boolean;
  /** Names of the probes that failed, with their reason. */
  failing: string[];
}

/** How often watched probes are re-run. */
const WATCH_PROBE_INTERVAL_MS = 5_000;

export class HealthMonitor {
  readonly #probes: readonly HealthProbe[];
  #stopping = false;
  #last: boolean | undefined;
  readonly #watchers = new Set<(serving: boolean) => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(probes: readonly HealthProbe[]) {
    this.#probes = probes;
  }

  /** Runs every probe now. */
  report(): HealthReport {
    if (this.#stopping) return { serving: false, failing: ["shutting down"] };
    const failing: string[] = [];
    for (const probe of this.#probes) {
      try {
        if (!probe.check()) failing.push(probe.name);
      } catch (error) {
        failing.push(`${probe.name}: ${(error as Error).message}`);
      }
    }
    const serving = failing.length === 0;
    this.#notify(serving);
    return { serving, failing };
  }

  /** Calls `listener` with every change of status (not the current one); returns the stop. */
  watch(listener: (serving: boolean) => void): () => void {
    this.#watchers.add(listener);
    this.#timer ??= setInterval(() => this.report(), WATCH_PROBE_INTERVAL_MS).unref();
    return () => {
      this.#watchers.delete(listener);
      if (this.#watchers.size === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  /** From now on not serving (the server is stopping); watchers hear it at once. */
  shutdown(): void {
    this.#stopping = true;
    this.#notify(false);
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #notify(serving: boolean): void {
    if (this.#last === serving) return;
    this.#last = serving;
    for (const listener of [...this.#watchers]) listener(serving);
  }
}
