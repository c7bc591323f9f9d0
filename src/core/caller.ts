/**
 * Who is calling: every core operation takes a Caller, whichever transport
 * the call came through.
 */

/** A permission a principal can be granted within a tenant (docs: README, permission model). */
export type GrantPermission =
  | "tenant:admin"
  | "service:create"
  | "service:read"
  | "service:delete"
  | "variable:read"
  | "variable:write"
  | "variable:subscribe";

export const GRANT_PERMISSIONS: readonly GrantPermission[] = [
  "tenant:admin",
  "service:create",
  "service:read",
  "service:delete",
  "variable:read",
  "variable:write",
  "variable:subscribe",
];

/** A permission held within a tenant, maybe limited to a service-name prefix. */
export interface Grant {
  tenantId: string;
  permission: GrantPermission;
  /** "" for every service of the tenant. */
  servicePrefix: string;
}

/** An authenticated identity. */
export interface Principal {
  /** Stable id, recorded as created_by and in the audit log. */
  id: string;
  /** Server admins manage tenants and principals and may do anything. */
  serverAdmin: boolean;
  /** The tenant a tenant principal belongs to. */
  tenantId?: string;
  /** Its name within the tenant. */
  name?: string;
  /** What it may do; replaced in place when grants change. */
  grants: readonly Grant[];
}

/** The caller of a core operation. */
export interface Caller {
  /** Undefined when the call carried no valid credentials. */
  principal: Principal | undefined;
  /** Where the call came from (for audit), e.g. "127.0.0.1:53012". */
  clientAddress?: string;
  /** Aborts when the credential of the call is revoked or expires (ends streams). */
  credentialSignal?: AbortSignal;
}

/**
 * Whether the caller is on the server's machine: it came over a loopback
 * address (127.0.0.0/8, ::1, or either mapped into IPv6). A path in the
 * server's file system means nothing to a process on another machine; an
 * unknown address counts as remote.
 */
export function isOnServerMachine(caller: Caller): boolean {
  const address = caller.clientAddress;
  if (address === undefined) return false;
  // "host:port", where host may itself contain colons (IPv6).
  const host = address.slice(0, Math.max(0, address.lastIndexOf(":")));
  return (
    host === "::1" ||
    host.startsWith("127.") ||
    host.startsWith("::ffff:127.") ||
    host === "::ffff:7f00:1"
  );
}

/** The bootstrap administrator of the server. */
export const SERVER_ADMIN: Principal = { id: "admin", serverAdmin: true, grants: [] };

/** A caller acting as the server admin (start-up tasks and tests). */
export const SERVER_ADMIN_CALLER: Caller = { principal: SERVER_ADMIN };
