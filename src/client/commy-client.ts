/**
 * CommyClient: the Commy API for TypeScript programs, over the generated
 * Connect clients (gen/commy/v1/). It adds what every program would
 * otherwise write itself: plain types (numbers for versions, Dates for
 * times), one error type (CommyError with its ErrorCode), timeouts,
 * retries of reads after a lost connection, cancellation, sessions,
 * subscriptions that resume by themselves, and the local fast path.
 */
import { Agent } from "node:http";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { IdentityService } from "../../gen/commy/v1/identity_pb.js";
import type {
  Service as WireService,
  Tenant as WireTenant,
  Variable as WireVariable,
} from "../../gen/commy/v1/resources_pb.js";
import { WatchService } from "../../gen/commy/v1/watch_pb.js";
import {
  type CallOptions,
  DEFAULT_RETRY_POLICY,
  type RetryPolicy,
  callOnce,
  callWithRetries,
} from "./call-policy.js";
import {
  type ApiKeyInfo,
  type AuditEventInfo,
  type AuditFilter,
  type CallerInfo,
  type CreatedApiKey,
  type PrincipalGrant,
  type PrincipalInfo,
  apiKeyOf,
  auditEventOf,
  callerOf,
  principalGrantsOf,
  principalOf,
} from "./identity-admin.js";
import type { LocalService, VariableInfo } from "./local-service.js";
import {
  BearerToken,
  type Credential,
  type Grant,
  type RefreshedToken,
  type Session,
  authenticateRequest,
  dateOf,
  sessionOf,
  wirePermission,
} from "./session.js";
import {
  DEFAULT_RECONNECT_POLICY,
  type ReconnectPolicy,
  type SubscribeOptions,
  type SubscribeTarget,
  Subscription,
} from "./subscription.js";

/** How to reach a server, and the client's defaults. */
export interface CommyClientOptions {
  /** The server, e.g. "http://127.0.0.1:8080" (https:// with TLS). */
  baseUrl: string;
  /**
   * The bearer token to call with: an API key, the server admin's token,
   * or a session token. `authenticate` replaces it.
   */
  token?: string;
  /** "2" (default): one multiplexed HTTP/2 connection; "1.1": a keep-alive pool. */
  httpVersion?: "1.1" | "2";
  /** Default limit of each call, in milliseconds; 0 for none. Default 10 s. */
  timeoutMs?: number;
  /** How reads are retried after a lost connection. */
  retry?: Partial<RetryPolicy>;
  /** How subscriptions reconnect. */
  reconnect?: Partial<ReconnectPolicy>;
  /** More connect-es interceptors (tracing, logging), run after the client's own. */
  interceptors?: Interceptor[];
}

/** The default limit of a call. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** A tenant. */
export interface TenantInfo {
  tenantId: string;
  /** Display name; not used to address the tenant. */
  tenantName: string;
  /** The principal that created it. */
  createdBy: string;
  createdAt: Date | undefined;
}

/** A service of a tenant. */
export interface ServiceInfo {
  tenantId: string;
  serviceName: string;
  /** Stable UUID, also written in the service file. */
  serviceId: string;
  createdBy: string;
  createdAt: Date | undefined;
}

export type { VariableInfo };

/** A variable's value with the version it belongs to. */
export interface VersionedValue {
  data: Uint8Array;
  version: number;
}

/** One page of a listing; `nextPageToken` is undefined on the last page. */
export interface Page<T> {
  items: T[];
  nextPageToken: string | undefined;
}

/** Which page of a listing. */
export interface PageOptions extends CallOptions {
  /** At most this many items (the server caps it); default: the server's choice. */
  pageSize?: number;
  /** The previous page's `nextPageToken`; omitted for the first page. */
  pageToken?: string;
}

/** Names a service. */
export interface ServiceRef {
  tenantId: string;
  serviceName: string;
}

/** Names a variable. */
export interface VariableRef extends ServiceRef {
  variableName: string;
}

/** Options of `allocateVariable`. */
export interface AllocateOptions extends CallOptions {
  /** The value at version 1; empty by default. */
  initialData?: Uint8Array;
  /** Bytes to reserve for later values (at least the initial value's length). */
  capacity?: number;
}

/** Options of `writeVariable`. */
export interface WriteOptions extends CallOptions {
  /** Compare-and-set: write only when the variable is at this version, else VERSION_CONFLICT. */
  expectedVersion?: number;
  /** Create the variable when it does not exist (needs the same permission as writing). */
  createIfMissing?: boolean;
}

/** Options of `openLocal`. */
export type OpenLocalOptions = CallOptions;

/** Names a principal of a tenant. */
export interface PrincipalRef {
  tenantId: string;
  /** The principal's name within the tenant. */
  name: string;
}

/** Options of `createPrincipal`. */
export interface CreatePrincipalOptions extends CallOptions {
  /** An initial password (at least 8 characters); none by default. */
  password?: string;
}

/** Options of `createApiKey`. */
export interface CreateApiKeyOptions extends CallOptions {
  /** Free text to tell keys apart. */
  description?: string;
}

/** Options of `listGrants`. */
export interface ListGrantsOptions extends CallOptions {
  /** Only this principal's grants; all of the tenant's by default. */
  principalName?: string;
}

/** Options of `listAuditEvents`: the filter and the page. */
export type ListAuditEventsOptions = AuditFilter & PageOptions;

/**
 * A client of one Commy server. Every method returns a promise that
 * rejects with a CommyError (narrow it with `isNotFound`, `isTimeout`, …)
 * or, when the caller's signal aborted it, with the signal's reason. Reads
 * (get, list, read) are retried after a lost connection; writes never are.
 * Call `close()` to let go of the connection.
 */
export interface CommyClient {
  /** Creates a tenant (server admin). ALREADY_EXISTS if there is one by that id. */
  createTenant(tenantId: string, tenantName?: string, options?: CallOptions): Promise<TenantInfo>;
  /** Returns a tenant. NOT_FOUND if there is none. */
  getTenant(tenantId: string, options?: CallOptions): Promise<TenantInfo>;
  /** One page of the tenants the caller may see, by tenant id. */
  listTenants(options?: PageOptions): Promise<Page<TenantInfo>>;
  /** Deletes a tenant with all its services and variables. NOT_FOUND if there is none. */
  deleteTenant(tenantId: string, options?: CallOptions): Promise<void>;

  /** Creates an empty service in a tenant. ALREADY_EXISTS if the tenant has one by that name. */
  createService(ref: ServiceRef, options?: CallOptions): Promise<ServiceInfo>;
  /** Returns a service. NOT_FOUND if it (or its tenant) does not exist. */
  getService(ref: ServiceRef, options?: CallOptions): Promise<ServiceInfo>;
  /** One page of a tenant's services, by name. */
  listServices(tenantId: string, options?: PageOptions): Promise<Page<ServiceInfo>>;
  /** Deletes a service and its variables; local readers see it marked deleted. */
  deleteService(ref: ServiceRef, options?: CallOptions): Promise<void>;

  /** Creates a variable at version 1. ALREADY_EXISTS if the service has one by that name. */
  allocateVariable(ref: VariableRef, options?: AllocateOptions): Promise<VariableInfo>;
  /** The current value and version of a variable (never torn). */
  readVariable(ref: VariableRef, options?: CallOptions): Promise<VersionedValue>;
  /**
   * Replaces a variable's value; returns the new version. With
   * `expectedVersion`, a compare-and-set (VERSION_CONFLICT on mismatch).
   */
  writeVariable(ref: VariableRef, data: Uint8Array, options?: WriteOptions): Promise<number>;
  /** Deletes a variable; its name may be allocated again. */
  deallocateVariable(ref: VariableRef, options?: CallOptions): Promise<void>;
  /** Every variable of a service with its version, size and capacity, by name. */
  listVariables(ref: ServiceRef, options?: CallOptions): Promise<VariableInfo[]>;

  /**
   * Follows the changes of one variable (`variableName`) or of a whole
   * service, as an async iterable that reconnects and resumes from the last
   * version it delivered. Starts with a snapshot of the current value(s)
   * unless `fromVersion`/`fromVersions` say what was seen already.
   */
  subscribe(target: SubscribeTarget, options?: SubscribeOptions): Subscription;

  /**
   * Maps a service's file for reads (and in-place writes) with no round
   * trip. Only for a process on the server's machine that may read the
   * service: PERMISSION_DENIED otherwise.
   */
  openLocal(
    tenantId: string,
    serviceName: string,
    options?: OpenLocalOptions,
  ): Promise<LocalService>;

  /**
   * Exchanges credentials for a session token, which this client sends
   * from then on. UNAUTHORIZED for any wrong credential.
   */
  authenticate(tenantId: string, credential: Credential, options?: CallOptions): Promise<Session>;
  /** Replaces the current session token with a fresh one (the old one stops working). */
  refresh(options?: CallOptions): Promise<RefreshedToken>;
  /** Revokes the current session token; the client then calls without credentials. */
  logout(options?: CallOptions): Promise<void>;

  /** Who the caller is (the principal the token authenticates) and what it may do. */
  whoAmI(options?: CallOptions): Promise<CallerInfo>;

  /**
   * Creates a principal in a tenant (tenant admin or server admin).
   * ALREADY_EXISTS if the tenant has one by that name.
   */
  createPrincipal(ref: PrincipalRef, options?: CreatePrincipalOptions): Promise<PrincipalInfo>;
  /** A tenant's principals, by name. */
  listPrincipals(tenantId: string, options?: CallOptions): Promise<PrincipalInfo[]>;
  /** Deletes a principal: its keys, grants and sessions stop working at once. */
  deletePrincipal(ref: PrincipalRef, options?: CallOptions): Promise<void>;
  /** Sets or replaces a principal's password (at least 8 characters); its sessions end. */
  setPassword(ref: PrincipalRef, password: string, options?: CallOptions): Promise<void>;

  /** Creates an API key for a principal; the returned secret is not shown again. */
  createApiKey(ref: PrincipalRef, options?: CreateApiKeyOptions): Promise<CreatedApiKey>;
  /** A tenant's API keys, without their secrets. */
  listApiKeys(tenantId: string, options?: CallOptions): Promise<ApiKeyInfo[]>;
  /** Revokes an API key at once. NOT_FOUND if the tenant has no such key. */
  revokeApiKey(tenantId: string, keyId: string, options?: CallOptions): Promise<void>;

  /**
   * Grants a permission of `grant.tenantId` to the principal `principalName`
   * of that tenant (idempotent). INVALID_REQUEST for an unknown permission.
   */
  grantPermission(principalName: string, grant: Grant, options?: CallOptions): Promise<void>;
  /** Revokes a grant made with the same permission and prefix; NOT_FOUND if there is none. */
  revokePermission(principalName: string, grant: Grant, options?: CallOptions): Promise<void>;
  /** The grants of a tenant's principals (or of one). */
  listGrants(tenantId: string, options?: ListGrantsOptions): Promise<PrincipalGrant[]>;

  /**
   * One page of audit events, oldest first: a tenant admin sees its
   * tenant's (give `tenantId`), the server admin all of them.
   */
  listAuditEvents(options?: ListAuditEventsOptions): Promise<Page<AuditEventInfo>>;

  /** The bearer token the client sends now, if any. */
  readonly token: string | undefined;
  /** Closes the connection(s); open subscriptions end with CONNECTION_LOST. */
  close(): void;
}

/** A CommyClient of the server at `options.baseUrl`. */
export function createCommyClient(options: CommyClientOptions): CommyClient {
  const bearer = new BearerToken(options.token);
  const { transport, close } = createTransport(options, [
    bearer.interceptor(),
    ...(options.interceptors ?? []),
  ]);
  const commy = createClient(CommyService, transport);
  const identity = createClient(IdentityService, transport);
  const watch = createClient(WatchService, transport);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retry: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const reconnect: ReconnectPolicy = { ...DEFAULT_RECONNECT_POLICY, ...options.reconnect };
  const read = <T>(attempt: Parameters<typeof callWithRetries<T>>[0], call?: CallOptions) =>
    callWithRetries(attempt, call, timeoutMs, retry);
  const change = <T>(attempt: Parameters<typeof callOnce<T>>[0], call?: CallOptions) =>
    callOnce(attempt, call, timeoutMs);

  return {
    get token() {
      return bearer.current;
    },
    close,

    createTenant: async (tenantId, tenantName = "", call) =>
      tenantOf((await change((o) => commy.createTenant({ tenantId, tenantName }, o), call)).tenant),
    getTenant: async (tenantId, call) =>
      tenantOf((await read((o) => commy.getTenant({ tenantId }, o), call)).tenant),
    listTenants: async (page = {}) => {
      const response = await read((o) => commy.listTenants(pageRequest(page), o), page);
      return { items: response.tenants.map(tenantOf), nextPageToken: next(response) };
    },
    deleteTenant: async (tenantId, call) => {
      await change((o) => commy.deleteTenant({ tenantId }, o), call);
    },

    createService: async (ref, call) =>
      serviceOf((await change((o) => commy.createService(serviceRef(ref), o), call)).service),
    getService: async (ref, call) =>
      serviceOf((await read((o) => commy.getService(serviceRef(ref), o), call)).service),
    listServices: async (tenantId, page = {}) => {
      const request = { tenantId, ...pageRequest(page) };
      const response = await read((o) => commy.listServices(request, o), page);
      return { items: response.services.map(serviceOf), nextPageToken: next(response) };
    },
    deleteService: async (ref, call) => {
      await change((o) => commy.deleteService(serviceRef(ref), o), call);
    },

    allocateVariable: async (ref, allocate = {}) => {
      const request = {
        ...variableRef(ref),
        initialData: allocate.initialData,
        capacity: allocate.capacity,
      };
      const response = await change((o) => commy.allocateVariable(request, o), allocate);
      return variableOf(response.variable, ref.variableName);
    },
    readVariable: async (ref, call) => {
      const request = variableRef(ref);
      const response = await read((o) => commy.readVariable(request, o), call);
      return { data: response.data, version: Number(response.version) };
    },
    writeVariable: async (ref, data, write = {}) => {
      const request = {
        ...variableRef(ref),
        data,
        expectedVersion:
          write.expectedVersion === undefined ? undefined : BigInt(write.expectedVersion),
        createIfMissing: write.createIfMissing === true,
      };
      return Number((await change((o) => commy.writeVariable(request, o), write)).version);
    },
    deallocateVariable: async (ref, call) => {
      await change((o) => commy.deallocateVariable(variableRef(ref), o), call);
    },
    listVariables: async (ref, call) => {
      const response = await read((o) => commy.listVariables(serviceRef(ref), o), call);
      return response.variables.map((v) => variableOf(v, v.variableName));
    },

    subscribe: (target, subscribe = {}) =>
      new Subscription((request, o) => watch.subscribe(request, o), target, subscribe, reconnect),

    openLocal: async (tenantId, serviceName, call) => {
      const request = { tenantId, serviceName };
      const file = await read((o) => commy.getServiceFile(request, o), call);
      // Loaded on first use: only local clients need the native mmap module.
      const { LocalService } = await import("./local-service.js");
      return LocalService.open({
        tenantId,
        serviceName,
        serviceId: file.serviceId,
        path: file.path,
      });
    },

    authenticate: async (tenantId, credential, call) => {
      const request = authenticateRequest(tenantId, credential);
      const session = sessionOf(await change((o) => identity.authenticate(request, o), call));
      bearer.current = session.token;
      return session;
    },
    refresh: async (call) => {
      const token = bearer.current ?? "";
      const response = await change((o) => identity.refreshToken({ token }, o), call);
      bearer.current = response.token;
      return { token: response.token, expiresAt: dateOf(response.expiresAt) };
    },
    logout: async (call) => {
      await change((o) => identity.logout({}, o), call);
      bearer.current = undefined;
    },

    whoAmI: async (call) => callerOf(await read((o) => identity.whoAmI({}, o), call)),

    createPrincipal: async (ref, create = {}) => {
      const request = { tenantId: ref.tenantId, name: ref.name, password: create.password ?? "" };
      const response = await change((o) => identity.createPrincipal(request, o), create);
      return principalOf(response.principal);
    },
    listPrincipals: async (tenantId, call) =>
      (await read((o) => identity.listPrincipals({ tenantId }, o), call)).principals.map(
        principalOf,
      ),
    deletePrincipal: async (ref, call) => {
      await change(
        (o) => identity.deletePrincipal({ tenantId: ref.tenantId, name: ref.name }, o),
        call,
      );
    },
    setPassword: async (ref, password, call) => {
      const request = { tenantId: ref.tenantId, name: ref.name, password };
      await change((o) => identity.setPassword(request, o), call);
    },

    createApiKey: async (ref, create = {}) => {
      const request = {
        tenantId: ref.tenantId,
        principalName: ref.name,
        description: create.description ?? "",
      };
      const response = await change((o) => identity.createApiKey(request, o), create);
      return { key: apiKeyOf(response.key), secret: response.apiKey };
    },
    listApiKeys: async (tenantId, call) =>
      (await read((o) => identity.listApiKeys({ tenantId }, o), call)).keys.map(apiKeyOf),
    revokeApiKey: async (tenantId, keyId, call) => {
      await change((o) => identity.revokeApiKey({ tenantId, keyId }, o), call);
    },

    grantPermission: async (principalName, grant, call) => {
      const request = permissionRequest(principalName, grant);
      await change((o) => identity.grantPermission(request, o), call);
    },
    revokePermission: async (principalName, grant, call) => {
      const request = permissionRequest(principalName, grant);
      await change((o) => identity.revokePermission(request, o), call);
    },
    listGrants: async (tenantId, list = {}) => {
      const request = { tenantId, principalName: list.principalName ?? "" };
      const response = await read((o) => identity.listGrants(request, o), list);
      return response.grants.flatMap(principalGrantsOf);
    },

    listAuditEvents: async (list = {}) => {
      const request = {
        tenantId: list.tenantId ?? "",
        principalId: list.principalId ?? "",
        action: list.action ?? "",
        since: list.since === undefined ? undefined : timestampFromDate(list.since),
        until: list.until === undefined ? undefined : timestampFromDate(list.until),
        pageSize: list.pageSize ?? 0,
        pageToken: list.pageToken ?? "",
      };
      const response = await read((o) => identity.listAuditEvents(request, o), list);
      return { items: response.events.map(auditEventOf), nextPageToken: next(response) };
    },
  };
}

/** The connect-es transport of a client, and how to close its connections. */
function createTransport(
  options: CommyClientOptions,
  interceptors: Interceptor[],
): { transport: Transport; close: () => void } {
  const common = { baseUrl: options.baseUrl, useBinaryFormat: true, interceptors };
  if (options.httpVersion === "1.1") {
    // Our own agent, so that close() closes its sockets.
    const agent = new Agent({ keepAlive: true });
    return {
      transport: createConnectTransport({
        ...common,
        httpVersion: "1.1",
        nodeOptions: { agent },
      }),
      close: () => agent.destroy(),
    };
  }
  // Pings find a connection that died silently, so subscriptions notice and resume.
  const sessionManager = new Http2SessionManager(options.baseUrl, {
    pingIntervalMs: 15_000,
    pingTimeoutMs: 10_000,
  });
  return {
    transport: createConnectTransport({ ...common, httpVersion: "2", sessionManager }),
    close: () => sessionManager.abort(),
  };
}

const serviceRef = (ref: ServiceRef) => ({
  tenantId: ref.tenantId,
  serviceName: ref.serviceName,
});

const variableRef = (ref: VariableRef) => ({
  tenantId: ref.tenantId,
  serviceName: ref.serviceName,
  variableName: ref.variableName,
});

const permissionRequest = (principalName: string, grant: Grant) => ({
  tenantId: grant.tenantId,
  principalName,
  permission: wirePermission(grant.permission),
  servicePrefix: grant.servicePrefix,
});

const pageRequest = (page: PageOptions) => ({
  pageSize: page.pageSize ?? 0,
  pageToken: page.pageToken ?? "",
});

const next = (response: { nextPageToken: string }): string | undefined =>
  response.nextPageToken === "" ? undefined : response.nextPageToken;

function tenantOf(tenant: WireTenant | undefined): TenantInfo {
  return {
    tenantId: tenant?.tenantId ?? "",
    tenantName: tenant?.tenantName ?? "",
    createdBy: tenant?.createdBy ?? "",
    createdAt: dateOf(tenant?.createdAt),
  };
}

function serviceOf(service: WireService | undefined): ServiceInfo {
  return {
    tenantId: service?.tenantId ?? "",
    serviceName: service?.serviceName ?? "",
    serviceId: service?.serviceId ?? "",
    createdBy: service?.createdBy ?? "",
    createdAt: dateOf(service?.createdAt),
  };
}

function variableOf(variable: WireVariable | undefined, name: string): VariableInfo {
  return {
    name: variable?.variableName || name,
    version: Number(variable?.version ?? 0n),
    size: variable?.size ?? 0,
    capacity: variable?.capacity ?? 0,
  };
}
