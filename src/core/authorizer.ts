/**
 * The permission hook of the core. Every operation asks it, after checking
 * that the caller is authenticated and before looking anything up, so that
 * a caller never learns whether something exists where it may not look.
 */
import type { Caller, Principal } from "./caller.js";
import { CommyError } from "./commy-error.js";

/** What an operation needs. Names match docs and the permission table. */
export type Permission =
  | "tenant.create"
  | "tenant.read"
  | "tenant.delete"
  | "service.create"
  | "service.read"
  | "service.delete"
  | "variable.read"
  | "variable.write"
  | "subscribe";

/** Where an operation acts: a tenant, and within it maybe a service. */
export interface Scope {
  tenantId?: string;
  serviceName?: string;
}

export interface Authorizer {
  /** True when `principal` holds `permission` on `scope`. */
  permits(principal: Principal, permission: Permission, scope: Scope): boolean;
}

/** Grants everything to server admins and nothing to anyone else. */
export const serverAdminOnly: Authorizer = {
  permits: (principal) => principal.serverAdmin,
};

/**
 * Checks, in the house order, that the caller is authenticated and holds
 * the permission; throws UNAUTHORIZED or PERMISSION_DENIED.
 */
export function authorize(
  authorizer: Authorizer,
  caller: Caller,
  permission: Permission,
  scope: Scope,
): Principal {
  const principal = caller.principal;
  if (principal === undefined) {
    throw new CommyError("UNAUTHORIZED", "authentication required: send valid credentials");
  }
  if (!authorizer.permits(principal, permission, scope)) {
    throw new CommyError(
      "PERMISSION_DENIED",
      `${principal.id} may not ${permission}${describe(scope)}`,
    );
  }
  return principal;
}

function describe(scope: Scope): string {
  if (scope.tenantId === undefined) return "";
  if (scope.serviceName === undefined) return ` in tenant ${scope.tenantId}`;
  return ` on service ${scope.serviceName} of tenant ${scope.tenantId}`;
}
