/**
 * The audit trail: every create and delete, every change of principals,
 * credentials and grants, every denied call. Durable in the control store;
 * nothing in the API edits it.
 */
import { type Action, type Scope, authorize } from "./authorizer.js";
import type { Caller, Principal } from "./caller.js";
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
    /** Told of every event recorded (metrics). */
    private readonly onRecord?: (action: string, outcome: string) => void,
  ) {}

  /**
   * Checks that the caller is authenticated and may act (authorizer.ts) and
   * records a denial before passing it on.
   */
  authorize(caller: Caller, action: Action, scope: Scope): Principal {
    try {
      return authorize(caller, action, scope);
    } catch (error) {
      const resource = [scope.tenantId, scope.serviceName]
        .filter((part) => part !== undefined)
        .join("/");
      const detail = isCommyError(error) ? error.code : "INTERNAL_ERROR";
      this.record(caller, {
        action,
        tenantId: scope.tenantId,
        resource,
        outcome: "denied",
        detail,
      });
      throw error;
    }
  }

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
    this.onRecord?.(entry.action, entry.outcome);
  }

  /**
   * Runs `operation` and records its outcome (ok, or failed with the error
   * code). The store rows `operation` writes and its ok row are one
   * transaction: one commit instead of two, and never a change without its
   * record. Effects outside the store belong after this returns, or must be
   * undone by the caller when it throws.
   */
  audited<T>(
    caller: Caller,
    action: string,
    tenantId: string,
    resource: string,
    operation: () => T,
  ): T {
    const entry = { action, tenantId, resource };
    try {
      return this.store.transaction(() => {
        const result = operation();
        this.record(caller, { ...entry, outcome: "ok" });
        return result;
      });
    } catch (error) {
      this.#recordFailure(caller, entry, error);
      throw error;
    }
  }

  /**
   * `audited` for a change that shares its commit with the other changes of
   * this event-loop turn (the store's group commit: one WAL append for all,
   * most of a small change's cost). `check` runs at once and may refuse
   * (recorded as failed; nothing is queued). `write` runs inside the shared
   * transaction with the ok row and must not refuse: a throw there fails
   * every change of the group. Resolves with what `check` returned once
   * the rows are committed.
   */
  async auditedInGroup<T>(
    caller: Caller,
    action: string,
    tenantId: string,
    resource: string,
    check: () => T,
    write: (checked: T) => void,
  ): Promise<T> {
    const entry = { action, tenantId, resource };
    try {
      const checked = check();
      await this.store.transactionInGroup(() => {
        write(checked);
        this.record(caller, { ...entry, outcome: "ok" });
      });
      return checked;
    } catch (error) {
      this.#recordFailure(caller, entry, error);
      throw error;
    }
  }

  /** `audited` for an operation that completes later. */
  async auditedAsync<T>(
    caller: Caller,
    action: string,
    tenantId: string,
    resource: string,
    operation: () => Promise<T>,
  ): Promise<T> {
    const entry = { action, tenantId, resource };
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

function isDenial(error: unknown): boolean {
  return isCommyError(error, "UNAUTHORIZED") || isCommyError(error, "PERMISSION_DENIED");
}
