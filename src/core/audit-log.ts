/**
 * The audit trail: every create and delete, every change of principals,
 * credentials and grants, every denied call. Durable in the control store;
 * nothing in the API edits it.
 */
import type { Caller } from "./caller.js";
import { isCommyError } from "./commy-error.js";
import type { AuditRecord, AuditStore } from "../store/identity-store.js";

/** What is recorded beyond the caller. */
export interface AuditEntry {
  action: string;
  tenantId?: string;
  resource: string;
  outcome: AuditRecord["outcome"];
  detail?: string;
}

export class AuditLog {
  constructor(
    private readonly store: AuditStore,
    private readonly now: () => number = Date.now,
  ) {}

  record(caller: Caller, entry: AuditEntry): void {
    this.store.appendAudit({
      time: this.now(),
      principalId: caller.principal?.id ?? "",
      tenantId: entry.tenantId ?? "",
      action: entry.action,
      resource: entry.resource,
      outcome: entry.outcome,
      clientAddress: caller.clientAddress ?? "",
      detail: entry.detail ?? "",
    });
  }

  /** Records the outcome of `operation` (ok, or failed/denied with the error code) and returns its result. */
  around<T>(caller: Caller, entry: Omit<AuditEntry, "outcome">, operation: () => T): T {
    try {
      const result = operation();
      this.record(caller, { ...entry, outcome: "ok" });
      return result;
    } catch (error) {
      this.#recordFailure(caller, entry, error);
      throw error;
    }
  }

  /** `around` for an operation that completes later. */
  async aroundAsync<T>(
    caller: Caller,
    entry: Omit<AuditEntry, "outcome">,
    operation: () => Promise<T>,
  ): Promise<T> {
    try {
      const result = await operation();
      this.record(caller, { ...entry, outcome: "ok" });
      return result;
    } catch (error) {
      this.#recordFailure(caller, entry, error);
      throw error;
    }
  }

  #recordFailure(caller: Caller, entry: Omit<AuditEntry, "outcome">, error: unknown): void {
    // Denials are recorded where they are decided (see CommyCore#authorize).
    if (isDenial(error)) return;
    const detail = isCommyError(error) ? error.code : "INTERNAL_ERROR";
    this.record(caller, { ...entry, outcome: "failed", detail });
  }
}

export function isDenial(error: unknown): boolean {
  return isCommyError(error, "UNAUTHORIZED") || isCommyError(error, "PERMISSION_DENIED");
}
