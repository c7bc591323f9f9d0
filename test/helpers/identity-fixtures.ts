/**
 * What the identity tests (test/identity) share on top of test-server.ts:
 * principals with grants and API keys made as an operator would, the
 * refusals they expect, a reader of the audit log that only returns what
 * happened since a mark, JWT signing, and servers started with options the
 * shared helper does not pass (a custom verifier, a generated admin token).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type CryptoKey, type JWTPayload, type KeyObject, SignJWT } from "jose";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import {
  type AuditEvent,
  type AuthenticateRequestSchema,
  Permission,
} from "../../gen/commy/v1/identity_pb.js";
import { type ServerExtras, startServer } from "../../src/server.js";
import { type ObservedError, expectCommyError } from "./error-details.js";
import {
  type ClientFactory,
  type Credentials,
  type IdentityClient,
  type TestServer,
  createClientFactory,
  createTestDataDir,
  credentialHeaders,
} from "./test-server.js";

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** A permission by the name the docs and JWT claims use. */
export type PermissionName =
  | "tenant:admin"
  | "service:create"
  | "service:read"
  | "service:delete"
  | "variable:read"
  | "variable:write"
  | "variable:subscribe";

/** Every permission, in the proto's order. */
export const PERMISSION_NAMES: readonly PermissionName[] = [
  "tenant:admin",
  "service:create",
  "service:read",
  "service:delete",
  "variable:read",
  "variable:write",
  "variable:subscribe",
];

/** The wire enum value of each permission. */
export const WIRE_PERMISSION: Record<PermissionName, Permission> = {
  "tenant:admin": Permission.TENANT_ADMIN,
  "service:create": Permission.SERVICE_CREATE,
  "service:read": Permission.SERVICE_READ,
  "service:delete": Permission.SERVICE_DELETE,
  "variable:read": Permission.VARIABLE_READ,
  "variable:write": Permission.VARIABLE_WRITE,
  "variable:subscribe": Permission.VARIABLE_SUBSCRIBE,
};

/** A grant to make: a permission, maybe limited to a service-name prefix. */
export interface GrantSpec {
  permission: PermissionName;
  servicePrefix?: string;
}

/** A tenant principal made for a test, with one API key. */
export interface Actor {
  tenantId: string;
  name: string;
  /** "<tenant>/<name>", as the audit log and created_by show it. */
  principalId: string;
  apiKey: string;
  keyId: string;
  /** The API key as bearer credentials. */
  credentials: Credentials;
}

/**
 * Creates, as the server admin, a principal of `tenantId` with these grants
 * (and a password when given) and an API key for it.
 */
export async function createActor(
  server: ClientFactory,
  tenantId: string,
  name: string,
  grants: readonly GrantSpec[],
  password = "",
): Promise<Actor> {
  const admin = server.identityClient();
  await admin.createPrincipal({ tenantId, name, password });
  for (const grant of grants) {
    await admin.grantPermission({
      tenantId,
      principalName: name,
      permission: WIRE_PERMISSION[grant.permission],
      servicePrefix: grant.servicePrefix ?? "",
    });
  }
  const created = await admin.createApiKey({ tenantId, principalName: name });
  return {
    tenantId,
    name,
    principalId: `${tenantId}/${name}`,
    apiKey: created.apiKey,
    keyId: created.key?.keyId ?? "",
    credentials: { bearer: created.apiKey },
  };
}

/** Fails unless `call` is refused with PERMISSION_DENIED (status and ErrorDetail). */
export const expectDenied = (call: Promise<unknown>): Promise<ObservedError> =>
  expectCommyError(call, Code.PermissionDenied, ErrorCode.PERMISSION_DENIED);

/** Fails unless `call` is refused with UNAUTHORIZED (status and ErrorDetail). */
export const expectUnauthorized = (call: Promise<unknown>): Promise<ObservedError> =>
  expectCommyError(call, Code.Unauthenticated, ErrorCode.UNAUTHORIZED);

/** Fails unless `call` fails with NOT_FOUND (status and ErrorDetail). */
export const expectNotFound = (call: Promise<unknown>): Promise<ObservedError> =>
  expectCommyError(call, Code.NotFound, ErrorCode.NOT_FOUND);

/** Fails unless `call` fails with INVALID_REQUEST (status and ErrorDetail). */
export const expectInvalid = (call: Promise<unknown>): Promise<ObservedError> =>
  expectCommyError(call, Code.InvalidArgument, ErrorCode.INVALID_REQUEST);

/** Filters of ListAuditEvents a test uses. */
export interface AuditFilter {
  tenantId?: string;
  principalId?: string;
  action?: string;
}

/** Every audit event matching `filter`, all pages, oldest first. */
export async function listAllAuditEvents(
  identity: IdentityClient,
  filter: AuditFilter = {},
  pageToken = "",
): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  let token = pageToken;
  do {
    const page = await identity.listAuditEvents({ ...filter, pageSize: 1000, pageToken: token });
    events.push(...page.events);
    token = page.nextPageToken;
  } while (token !== "");
  return events;
}

/**
 * Reads the audit log as the server admin from a mark on: `mark()` skips
 * everything recorded so far, `since()` returns what was recorded after.
 */
export interface AuditTail {
  mark(): Promise<void>;
  since(filter?: AuditFilter): Promise<AuditEvent[]>;
}

export function createAuditTail(server: ClientFactory): AuditTail {
  const admin = server.identityClient();
  let lastEventId = 0n;
  const after = (filter: AuditFilter): Promise<AuditEvent[]> =>
    listAllAuditEvents(admin, filter, lastEventId === 0n ? "" : String(lastEventId));
  return {
    mark: async () => {
      const events = await after({});
      lastEventId = events.at(-1)?.eventId ?? lastEventId;
    },
    since: (filter = {}) => after(filter),
  };
}

/** The fields of an audit event a test compares (not its id or time). */
export function auditFields(event: AuditEvent): Record<string, string> {
  return {
    principalId: event.principalId,
    tenantId: event.tenantId,
    action: event.action,
    resource: event.resource,
    outcome: event.outcome,
    detail: event.detail,
  };
}

/** Where every test client calls from. */
export const LOOPBACK_CLIENT_ADDRESS = /^127\.0\.0\.1:\d+$/;

/** The admin token the shared helper gives every server it starts. */
export function testAdminToken(): string {
  const header = credentialHeaders("admin").authorization ?? "";
  return header.slice("Bearer ".length);
}

/** How a server started by `startServerWithExtras` gets its admin token. */
export type AdminTokenSource = "test" | "environment-or-data-dir";

/**
 * A server on an ephemeral loopback port with `extras` the shared helper
 * does not pass (e.g. a custom verifier). With adminTokenSource "test" it
 * takes the helper's admin token, so that "admin" credentials work; with
 * "environment-or-data-dir" it picks its own as `commy serve` does.
 */
export async function startServerWithExtras(
  extras: ServerExtras,
  options: { dataDir?: string; adminTokenSource?: AdminTokenSource } = {},
): Promise<TestServer> {
  const ownDir = options.dataDir === undefined ? createTestDataDir() : undefined;
  const dataDir = options.dataDir ?? (ownDir?.path as string);
  const adminToken =
    (options.adminTokenSource ?? "test") === "test" ? testAdminToken() : extras.adminToken;
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(
      { logLevel: "silent", port: 0, host: "127.0.0.1", dataDir },
      { ...extras, adminToken },
    );
  } catch (error) {
    ownDir?.remove();
    throw error;
  }
  const clients = createClientFactory(server.url);
  let closed: Promise<void> | undefined;
  return {
    ...clients,
    server,
    dataDir,
    close: () =>
      (closed ??= (async () => {
        clients.closeClients();
        await server.close();
        ownDir?.remove();
      })()),
  };
}

/** A key JWTs are signed with: an HS secret's bytes or an asymmetric private key. */
export type SigningKey = Uint8Array | KeyObject | CryptoKey;
export type { CryptoKey };

/** Signs `claims` as a JWT; `exp` and `sub` are whatever the claims say (none when absent). */
export function signJwt(
  claims: JWTPayload,
  key: SigningKey,
  header: { alg: string; kid?: string } = { alg: "HS256" },
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

/** Credentials as Authenticate takes them (the request's oneof). */
export type CredentialInit = MessageInitShape<typeof AuthenticateRequestSchema>["credential"];

/** Milliseconds since the epoch of a timestamp the server sent; NaN when it sent none. */
export const millisOf = (timestamp: Timestamp | undefined): number =>
  timestamp === undefined ? Number.NaN : timestampMs(timestamp);

/** Seconds since the epoch, as JWT claims count time. */
export const epochSeconds = (offsetSeconds = 0): number =>
  Math.floor(Date.now() / 1000) + offsetSeconds;
