/**
 * Who a CommyClient calls as: the bearer token it sends (an API key, the
 * admin token, or a session token from `authenticate`), and the
 * translation of IdentityService's session messages.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Interceptor } from "@connectrpc/connect";
import {
  type AuthenticateRequestSchema,
  type AuthenticateResponse,
  type Grant as WireGrant,
  Permission,
} from "../../gen/commy/v1/identity_pb.js";
import type { GrantPermission } from "../core/caller.js";

export type { GrantPermission };

/** Credentials exchanged for a session token; exactly one kind. */
export type Credential =
  | { apiKey: string }
  | { username: string; password: string }
  | { jwt: string }
  /** For the server's custom verifier, as JSON text. */
  | { customJson: string };

/** A permission held within a tenant, maybe limited to services whose names start with a prefix. */
export interface Grant {
  tenantId: string;
  permission: GrantPermission;
  /** "" for every service of the tenant. */
  servicePrefix: string;
}

/** What `authenticate` returns; the client sends `token` from then on. */
export interface Session {
  token: string;
  /** When the token stops working; refresh before. */
  expiresAt: Date | undefined;
  /** "<tenant_id>/<name>", as created_by and the audit log show it. */
  principalId: string;
  grants: Grant[];
}

/** A refreshed session token. */
export interface RefreshedToken {
  token: string;
  expiresAt: Date | undefined;
}

const PERMISSION_NAMES: Partial<Record<Permission, GrantPermission>> = {
  [Permission.TENANT_ADMIN]: "tenant:admin",
  [Permission.SERVICE_CREATE]: "service:create",
  [Permission.SERVICE_READ]: "service:read",
  [Permission.SERVICE_DELETE]: "service:delete",
  [Permission.VARIABLE_READ]: "variable:read",
  [Permission.VARIABLE_WRITE]: "variable:write",
  [Permission.VARIABLE_SUBSCRIBE]: "variable:subscribe",
};

const WIRE_PERMISSIONS = Object.fromEntries(
  Object.entries(PERMISSION_NAMES).map(([wire, name]) => [name, Number(wire) as Permission]),
) as Record<GrantPermission, Permission>;

/** Internal: the wire Permission of a permission name; UNSPECIFIED for one that is none. */
export function wirePermission(permission: GrantPermission): Permission {
  return WIRE_PERMISSIONS[permission] ?? Permission.UNSPECIFIED;
}

/** Internal: the permission name of a wire Permission, or undefined for one this client does not know. */
export function permissionName(permission: Permission): GrantPermission | undefined {
  return PERMISSION_NAMES[permission];
}

/** Internal: the bearer token a client sends, replaced by authenticate/refresh/logout. */
export class BearerToken {
  constructor(public current: string | undefined) {}

  /** Sets the Authorization header of every call from the token current at the time. */
  interceptor(): Interceptor {
    return (next) => (request) => {
      if (this.current !== undefined) request.header.set("authorization", `Bearer ${this.current}`);
      return next(request);
    };
  }
}

/** Internal: the Authenticate request for `credential`. */
export function authenticateRequest(
  tenantId: string,
  credential: Credential,
): MessageInitShape<typeof AuthenticateRequestSchema> {
  if ("apiKey" in credential) {
    return { tenantId, credential: { case: "apiKey", value: credential.apiKey } };
  }
  if ("password" in credential) {
    return {
      tenantId,
      credential: {
        case: "password",
        value: { username: credential.username, password: credential.password },
      },
    };
  }
  if ("jwt" in credential) return { tenantId, credential: { case: "jwt", value: credential.jwt } };
  return { tenantId, credential: { case: "customJson", value: credential.customJson } };
}

/** Internal: the Session an Authenticate response describes. */
export function sessionOf(response: AuthenticateResponse): Session {
  return {
    token: response.token,
    expiresAt: dateOf(response.expiresAt),
    principalId: response.principal?.principalId ?? "",
    grants: response.grants.flatMap(grantOf),
  };
}

/** Internal: a wire Timestamp as a Date. */
export function dateOf(timestamp: Timestamp | undefined): Date | undefined {
  return timestamp === undefined ? undefined : timestampDate(timestamp);
}

/** Internal: a wire Grant as a Grant, in a list that is empty for a permission this client does not know. */
export function grantOf(grant: WireGrant): Grant[] {
  const permission = PERMISSION_NAMES[grant.permission];
  // A permission this client does not know yet is left out rather than guessed.
  return permission === undefined
    ? []
    : [{ tenantId: grant.tenantId, permission, servicePrefix: grant.servicePrefix }];
}
