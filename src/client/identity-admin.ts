/**
 * What a CommyClient says about identities: the caller (WhoAmI), a
 * tenant's principals, API keys and grants, and the audit log, as plain
 * types (Dates for times, permission names for permissions), with the
 * translation of IdentityService's messages into them.
 */
import type {
  ApiKey as WireApiKey,
  AuditEvent as WireAuditEvent,
  Principal as WirePrincipal,
  PrincipalGrant as WirePrincipalGrant,
  WhoAmIResponse,
} from "../../gen/commy/v1/identity_pb.js";
import { type Grant, dateOf, grantOf } from "./session.js";

/** A principal: an identity that can authenticate to one tenant. */
export interface PrincipalInfo {
  /** "" for the server admin. */
  tenantId: string;
  /** Unique within the tenant; the username for password authentication. */
  name: string;
  /** "<tenant_id>/<name>" (or "admin"), as created_by and the audit log show it. */
  principalId: string;
  createdBy: string;
  createdAt: Date | undefined;
  hasPassword: boolean;
}

/** Who the caller is and what it may do. */
export interface CallerInfo {
  principal: PrincipalInfo | undefined;
  serverAdmin: boolean;
  grants: Grant[];
}

/** An API key's metadata; the secret is shown only once, by `createApiKey`. */
export interface ApiKeyInfo {
  /** Public identifier of the key (also the start of its secret). */
  keyId: string;
  tenantId: string;
  /** The principal the key authenticates as. */
  principalName: string;
  description: string;
  createdBy: string;
  createdAt: Date | undefined;
  /** When it was revoked; undefined while it works. */
  revokedAt: Date | undefined;
}

/** A new API key with its secret, which the server does not keep. */
export interface CreatedApiKey {
  key: ApiKeyInfo;
  /** The bearer token / Authenticate credential; shown only now. */
  secret: string;
}

/** A grant with the principal that holds it. */
export interface PrincipalGrant extends Grant {
  principalName: string;
}

/** One audited event. */
export interface AuditEventInfo {
  /** Increasing; also usable as a page token to read what came after it. */
  eventId: string;
  time: Date | undefined;
  /** Who acted; "" for an unauthenticated caller. */
  principalId: string;
  /** "" for server-level actions. */
  tenantId: string;
  /** e.g. "service.create", "grant.add", "auth.login". */
  action: string;
  /** e.g. "acme/config" or "acme/config/x". */
  resource: string;
  /** "ok", "denied" or "failed". */
  outcome: string;
  clientAddress: string;
  /** More about the outcome (the error code of a failure). */
  detail: string;
}

/** Which audit events to list; every field narrows the result. */
export interface AuditFilter {
  /** Required unless the caller is the server admin. */
  tenantId?: string;
  principalId?: string;
  action?: string;
  /** At or after this time. */
  since?: Date;
  /** Before this time. */
  until?: Date;
}

/** Internal: a wire Principal as a PrincipalInfo. */
export function principalOf(principal: WirePrincipal | undefined): PrincipalInfo {
  return {
    tenantId: principal?.tenantId ?? "",
    name: principal?.name ?? "",
    principalId: principal?.principalId ?? "",
    createdBy: principal?.createdBy ?? "",
    createdAt: dateOf(principal?.createdAt),
    hasPassword: principal?.hasPassword ?? false,
  };
}

/** Internal: a WhoAmI response as a CallerInfo. */
export function callerOf(response: WhoAmIResponse): CallerInfo {
  return {
    principal: response.principal === undefined ? undefined : principalOf(response.principal),
    serverAdmin: response.serverAdmin,
    grants: response.grants.flatMap(grantOf),
  };
}

/** Internal: a wire ApiKey as an ApiKeyInfo. */
export function apiKeyOf(key: WireApiKey | undefined): ApiKeyInfo {
  return {
    keyId: key?.keyId ?? "",
    tenantId: key?.tenantId ?? "",
    principalName: key?.principalName ?? "",
    description: key?.description ?? "",
    createdBy: key?.createdBy ?? "",
    createdAt: dateOf(key?.createdAt),
    revokedAt: dateOf(key?.revokedAt),
  };
}

/** Internal: a wire PrincipalGrant as PrincipalGrants (none for an unknown permission). */
export function principalGrantsOf(grant: WirePrincipalGrant): PrincipalGrant[] {
  if (grant.grant === undefined) return [];
  return grantOf(grant.grant).map((g) => ({ principalName: grant.principalName, ...g }));
}

/** Internal: a wire AuditEvent as an AuditEventInfo. */
export function auditEventOf(event: WireAuditEvent): AuditEventInfo {
  return {
    eventId: String(event.eventId),
    time: dateOf(event.time),
    principalId: event.principalId,
    tenantId: event.tenantId,
    action: event.action,
    resource: event.resource,
    outcome: event.outcome,
    clientAddress: event.clientAddress,
    detail: event.detail,
  };
}
