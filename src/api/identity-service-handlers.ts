/**
 * The Connect handlers of commy.v1.IdentityService: request → core
 * (src/core/identity.ts) → response. No rule lives here.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  ApiKeySchema,
  AuditEventSchema,
  GrantSchema,
  type IdentityService,
  type JwtConfig,
  Permission,
  PrincipalSchema,
} from "../../gen/commy/v1/identity_pb.js";
import type { Grant, GrantPermission, Principal } from "../core/caller.js";
import { invalidRequest } from "../core/commy-error.js";
import {
  type Credential,
  type Identity,
  type PrincipalView,
  bearerToken,
} from "../core/identity.js";
import type { JwtSettings } from "../core/jwt-verifier.js";
import type { ApiKeyRecord, AuditRecord } from "../store/identity-store.js";
import { callerOf } from "./caller-context.js";

/** Wire Permission ↔ core permission name, in enum order. */
const WIRE_PERMISSIONS: readonly [Permission, GrantPermission][] = [
  [Permission.TENANT_ADMIN, "tenant:admin"],
  [Permission.SERVICE_CREATE, "service:create"],
  [Permission.SERVICE_READ, "service:read"],
  [Permission.SERVICE_DELETE, "service:delete"],
  [Permission.VARIABLE_READ, "variable:read"],
  [Permission.VARIABLE_WRITE, "variable:write"],
  [Permission.VARIABLE_SUBSCRIBE, "variable:subscribe"],
];

/** The core's name of a wire permission; the core refuses "unspecified" after its checks. */
function permissionName(permission: Permission): string {
  return WIRE_PERMISSIONS.find(([wire]) => wire === permission)?.[1] ?? "unspecified";
}

function wirePermission(name: GrantPermission): Permission {
  return WIRE_PERMISSIONS.find(([, core]) => core === name)?.[0] ?? Permission.UNSPECIFIED;
}

const toGrant = (g: Grant) =>
  create(GrantSchema, {
    tenantId: g.tenantId,
    permission: wirePermission(g.permission),
    servicePrefix: g.servicePrefix,
  });

function principalOf(p: Principal) {
  return create(PrincipalSchema, {
    tenantId: p.tenantId ?? "",
    name: p.name ?? p.id,
    principalId: p.id,
  });
}

const toPrincipal = (p: PrincipalView) =>
  create(PrincipalSchema, {
    tenantId: p.tenantId,
    name: p.name,
    principalId: p.principalId,
    createdBy: p.createdBy,
    createdAt: timestampFromMs(p.createdAt),
    hasPassword: p.hasPassword,
  });

const toApiKey = (k: ApiKeyRecord) =>
  create(ApiKeySchema, {
    keyId: k.keyId,
    tenantId: k.tenantId,
    principalName: k.principalName,
    description: k.description,
    createdBy: k.createdBy,
    createdAt: timestampFromMs(k.createdAt),
    revokedAt: k.revokedAt === undefined ? undefined : timestampFromMs(k.revokedAt),
  });

const toAuditEvent = (e: AuditRecord) =>
  create(AuditEventSchema, {
    eventId: BigInt(e.eventId),
    time: timestampFromMs(e.time),
    principalId: e.principalId,
    tenantId: e.tenantId,
    action: e.action,
    resource: e.resource,
    outcome: e.outcome,
    clientAddress: e.clientAddress,
    detail: e.detail,
  });

function credentialOf(request: {
  credential: { case: string | undefined; value?: unknown };
}): Credential {
  const { credential } = request;
  switch (credential.case) {
    case "apiKey":
      return { kind: "api_key", key: credential.value as string };
    case "password": {
      const { username, password } = credential.value as { username: string; password: string };
      return { kind: "password", username, password };
    }
    case "jwt":
      return { kind: "jwt", token: credential.value as string };
    case "customJson":
      try {
        return { kind: "custom", data: JSON.parse(credential.value as string) as unknown };
      } catch {
        throw invalidRequest("custom_json is not valid JSON");
      }
    default:
      throw invalidRequest("credentials are required");
  }
}

function jwtSettingsOf(config: JwtConfig | undefined): JwtSettings | undefined {
  if (config === undefined) return undefined;
  const settings: JwtSettings = {
    issuer: config.issuer,
    audience: config.audience,
    permissionsClaim: config.permissionsClaim,
  };
  if (config.key.case === "hsSecret") settings.hsSecret = config.key.value;
  if (config.key.case === "publicKeyPem") settings.publicKeyPem = config.key.value;
  if (config.key.case === "jwksFile") settings.jwksFile = config.key.value;
  return settings;
}

const millis = (t: Timestamp | undefined) =>
  t === undefined ? undefined : timestampDate(t).getTime();

function tokenOf(context: HandlerContext): string | undefined {
  return bearerToken(context.requestHeader.get("authorization"));
}

export function createIdentityServiceHandlers(
  identity: Identity,
): ServiceImpl<typeof IdentityService> {
  return {
    authenticate: async (req, ctx) => {
      const session = await identity.authenticate(callerOf(ctx), req.tenantId, credentialOf(req));
      return {
        token: session.token,
        expiresAt: timestampFromMs(session.expiresAt),
        principal: principalOf(session.principal),
        grants: session.principal.grants.map(toGrant),
      };
    },
    refreshToken: (req, ctx) => {
      const session = identity.refresh(callerOf(ctx), req.token);
      return { token: session.token, expiresAt: timestampFromMs(session.expiresAt) };
    },
    logout: (_req, ctx) => {
      identity.logout(callerOf(ctx), tokenOf(ctx));
      return {};
    },
    whoAmI: (_req, ctx) => {
      const principal = identity.whoAmI(callerOf(ctx));
      return {
        principal: principalOf(principal),
        serverAdmin: principal.serverAdmin,
        grants: principal.grants.map(toGrant),
      };
    },
    createPrincipal: async (req, ctx) => ({
      principal: toPrincipal(
        await identity.createPrincipal(callerOf(ctx), req.tenantId, req.name, req.password),
      ),
    }),
    listPrincipals: (req, ctx) => ({
      principals: identity.listPrincipals(callerOf(ctx), req.tenantId).map(toPrincipal),
    }),
    deletePrincipal: (req, ctx) => {
      identity.deletePrincipal(callerOf(ctx), req.tenantId, req.name);
      return {};
    },
    setPassword: async (req, ctx) => {
      await identity.setPassword(callerOf(ctx), req.tenantId, req.name, req.password);
      return {};
    },
    createApiKey: (req, ctx) => {
      const { record, key } = identity.createApiKey(
        callerOf(ctx),
        req.tenantId,
        req.principalName,
        req.description,
      );
      return { key: toApiKey(record), apiKey: key };
    },
    listApiKeys: (req, ctx) => ({
      keys: identity.listApiKeys(callerOf(ctx), req.tenantId).map(toApiKey),
    }),
    revokeApiKey: (req, ctx) => {
      identity.revokeApiKey(callerOf(ctx), req.tenantId, req.keyId);
      return {};
    },
    grantPermission: (req, ctx) => {
      identity.grant(
        callerOf(ctx),
        req.tenantId,
        req.principalName,
        permissionName(req.permission),
        req.servicePrefix,
      );
      return {};
    },
    revokePermission: (req, ctx) => {
      identity.revoke(
        callerOf(ctx),
        req.tenantId,
        req.principalName,
        permissionName(req.permission),
        req.servicePrefix,
      );
      return {};
    },
    listGrants: (req, ctx) => ({
      grants: identity
        .listGrants(callerOf(ctx), req.tenantId, req.principalName)
        .map((g) => ({ principalName: g.principalName, grant: toGrant(g.grant) })),
    }),
    setJwtConfig: (req, ctx) => {
      identity.setJwtConfig(callerOf(ctx), req.tenantId, jwtSettingsOf(req.config));
      return {};
    },
    listAuditEvents: (req, ctx) => {
      const page = identity.listAudit(callerOf(ctx), {
        tenantId: req.tenantId === "" ? undefined : req.tenantId,
        since: millis(req.since),
        until: millis(req.until),
        principalId: req.principalId === "" ? undefined : req.principalId,
        action: req.action === "" ? undefined : req.action,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return { events: page.events.map(toAuditEvent), nextPageToken: page.nextPageToken };
    },
  };
}
