/**
 * Who may do what, in one place. Every core operation asks, after checking
 * that the caller is authenticated and before looking anything up, so that
 * a caller never learns whether something exists where it may not look.
 */
import type { Caller, GrantPermission, Principal } from "./caller.js";
import { CommyError } from "./commy-error.js";

/** What an operation does, for permission checks and the audit log. */
export type Action =
  | "tenant.create"
  | "tenant.read"
  | "tenant.delete"
  | "service.create"
  | "service.read"
  | "service.delete"
  | "variable.read"
  | "variable.write"
  | "variable.subscribe"
  | "identity.manage"
  | "audit.read"
  | "jwt.configure";

/** Where an operation acts: a tenant, and within it maybe a service. */
export interface Scope {
  tenantId?: string;
  serviceName?: string;
}

/** What each action needs; "server-admin" actions need the server admin. */
const REQUIRED: Record<Action, GrantPermission | "server-admin" | "any-grant"> = {
  "tenant.create": "server-admin",
  "tenant.delete": "server-admin",
  "jwt.configure": "server-admin",
  "tenant.read": "any-grant",
  "service.create": "service:create",
  "service.read": "service:read",
  "service.delete": "service:delete",
  "variable.read": "variable:read",
  "variable.write": "variable:write",
  "variable.subscribe": "variable:subscribe",
  "identity.manage": "tenant:admin",
  "audit.read": "tenant:admin",
};

/**
 * True when `principal` may do `action` in `scope`. Without a service name
 * in the scope, a grant of any prefix counts (listings filter by prefix
 * with `mayDoOnService`).
 */
export function permits(principal: Principal, action: Action, scope: Scope): boolean {
  if (principal.serverAdmin) return true;
  const required = REQUIRED[action];
  if (required === "server-admin" || scope.tenantId === undefined) return false;
  return principal.grants.some(
    (grant) =>
      grant.tenantId === scope.tenantId &&
      (grant.permission === "tenant:admin" ||
        required === "any-grant" ||
        grant.permission === required) &&
      (scope.serviceName === undefined || scope.serviceName.startsWith(grant.servicePrefix)) &&
      // Managing principals and grants is tenant-wide: a prefix-limited admin could lift its limit.
      (required !== "tenant:admin" || grant.servicePrefix === ""),
  );
}

/** True when `principal` may do `action` on the named service (for filtering listings). */
export function mayDoOnService(
  principal: Principal,
  action: Action,
  tenantId: string,
  serviceName: string,
): boolean {
  return permits(principal, action, { tenantId, serviceName });
}

/**
 * Checks, in the house order, that the caller is authenticated and may act;
 * throws UNAUTHORIZED or PERMISSION_DENIED.
 */
export function authorize(caller: Caller, action: Action, scope: Scope): Principal {
  const principal = caller.principal;
  if (principal === undefined) {
    throw new CommyError("UNAUTHORIZED", "authentication required: send valid credentials");
  }
  if (!permits(principal, action, scope)) {
    throw new CommyError(
      "PERMISSION_DENIED",
      `${principal.id} may not ${action}${describe(scope)}`,
    );
  }
  return principal;
}

function describe(scope: Scope): string {
  if (scope.tenantId === undefined) return "";
  if (scope.serviceName === undefined) return ` in tenant ${scope.tenantId}`;
  return ` on service ${scope.serviceName} of tenant ${scope.tenantId}`;
}
