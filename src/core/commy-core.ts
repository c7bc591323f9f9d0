/**
 * The core: every operation of Commy, whichever door it came through (the
 * Connect API, the legacy WebSocket bridge, the CLI). Each one checks, in
 * order: authenticated → permitted → valid → exists, then acts. Transports
 * only translate; no rule lives anywhere else.
 */
import type { OwnedServiceFile, VariableInfo } from "../shm/index.js";
import type { ControlStore, Page, ServiceRecord, TenantRecord } from "../store/control-store.js";
import { mayDoOnService, permits } from "./authorizer.js";
import type { AuditLog } from "./audit-log.js";
import { type Caller, type Principal, isOnServerMachine } from "./caller.js";
import { CommyError, alreadyExists, invalidRequest, notFound } from "./commy-error.js";
import { describeInvalidName } from "./names.js";
import type { ServiceFileRegistry } from "./service-file-registry.js";
import { withShmErrors, withShmErrorsWaitingForLocks } from "./shm-errors.js";
import { ChangeFeed } from "./change-feed.js";
import { DEFAULT_TENANT_QUOTAS, type TenantQuotas } from "./tenant-quotas.js";

export type { VariableInfo } from "../shm/index.js";

/** The most items a listing returns in one page. */
export const MAX_PAGE_SIZE = 1000;
const DEFAULT_PAGE_SIZE = 100;

/** Names a service. */
export interface ServiceRef {
  tenantId: string;
  serviceName: string;
}

/** Names a variable. */
export interface VariableRef extends ServiceRef {
  variableName: string;
}

/** Which page of a listing. */
export interface PageRequest {
  pageSize?: number;
  pageToken?: string;
}

export interface WriteRequest extends VariableRef {
  data: Uint8Array;
  expectedVersion?: number;
  /** Create the variable if it does not exist (needs variable.write). */
  createIfMissing?: boolean;
  /** Ends a wait for a variable held by a local writer (the call's deadline or cancellation). */
  signal?: AbortSignal;
}

export interface WriteResult {
  version: number;
  created: boolean;
}

export interface CoreDependencies {
  store: ControlStore;
  files: ServiceFileRegistry;
  audit: AuditLog;
  /** Told when a tenant is gone (identity drops its principals' tokens). */
  onTenantDeleted?: (tenantId: string) => void;
  /** Milliseconds since the epoch (injectable for tests). */
  now?: () => number;
  quotas?: Partial<TenantQuotas>;
}

interface LiveService {
  record: ServiceRecord;
  file: OwnedServiceFile;
}

export class CommyCore {
  /** Where every change of every service is published once (DESIGN §1). */
  readonly feed = new ChangeFeed();
  readonly #store: ControlStore;
  readonly #files: ServiceFileRegistry;
  readonly #audit: AuditLog;
  readonly #onTenantDeleted: (tenantId: string) => void;
  readonly #now: () => number;
  readonly #quotas: TenantQuotas;
  /** tenantId → serviceName → service; the store is the truth, this the fast path. */
  readonly #services = new Map<string, Map<string, LiveService>>();
  /** serviceId → service, for the legacy protocol, which names services by id. */
  readonly #servicesById = new Map<string, LiveService>();
  /** Service names ("tenant/service") with a create or delete waiting for its commit. */
  readonly #committing = new Map<string, Promise<unknown>>();
  /** tenantId → creates waiting for their commit (they count against the quota). */
  readonly #creating = new Map<string, number>();
  #closed = false;

  constructor(deps: CoreDependencies) {
    this.#store = deps.store;
    this.#files = deps.files;
    this.#audit = deps.audit;
    this.#onTenantDeleted = deps.onTenantDeleted ?? (() => undefined);
    this.#now = deps.now ?? Date.now;
    this.#quotas = { ...DEFAULT_TENANT_QUOTAS, ...deps.quotas };
    for (const record of this.#store.allServices()) {
      const file = this.#files.get(record.serviceId);
      if (file !== undefined) this.#remember({ record, file });
    }
  }

  // ---- tenants ----

  createTenant(caller: Caller, request: { tenantId: string; tenantName?: string }): TenantRecord {
    const principal = this.#audit.authorize(caller, "tenant.create", {
      tenantId: request.tenantId,
    });
    validateName("tenant", request.tenantId);
    const tenantName = request.tenantName ?? request.tenantId;
    if (tenantName.length > 256) throw invalidRequest("tenant_name is longer than 256 characters");
    const tenant: TenantRecord = {
      tenantId: request.tenantId,
      tenantName: tenantName === "" ? request.tenantId : tenantName,
      createdBy: principal.id,
      createdAt: this.#now(),
    };
    return this.#audit.audited(caller, "tenant.create", tenant.tenantId, tenant.tenantId, () => {
      if (!this.#store.insertTenant(tenant)) throw alreadyExists(`tenant ${request.tenantId}`);
      return tenant;
    });
  }

  getTenant(caller: Caller, tenantId: string): TenantRecord {
    this.#audit.authorize(caller, "tenant.read", { tenantId });
    validateName("tenant", tenantId);
    return this.#tenant(tenantId);
  }

  /** Tenants the caller may read, by id: all for the server admin, else those it holds grants in. */
  listTenants(caller: Caller, page: PageRequest): Page<TenantRecord> {
    const principal = this.#authenticated(caller);
    const limit = pageSize(page);
    const after = pageToken(page);
    if (principal.serverAdmin) return this.#store.listTenants(after, limit);
    const ids = [...new Set(principal.grants.map((g) => g.tenantId))]
      .sort()
      .filter((id) => after === undefined || id > after);
    const items = ids.slice(0, limit).flatMap((id) => this.#store.getTenant(id) ?? []);
    return ids.length > limit ? { items, next: ids[limit - 1] } : { items };
  }

  /** Deletes a tenant with all of its services and their files. */
  deleteTenant(caller: Caller, tenantId: string): void {
    this.#audit.authorize(caller, "tenant.delete", { tenantId });
    validateName("tenant", tenantId);
    const services = this.#audit.audited(caller, "tenant.delete", tenantId, tenantId, () => {
      const deleted = this.#store.deleteTenant(tenantId);
      if (deleted === undefined) throw notFound(`tenant ${tenantId}`);
      return deleted;
    });
    // Only once the rows and the audit row are committed: rows first, then
    // the files (a crash in between leaves orphan files, removed at start-up).
    for (const service of services) this.#forget(service);
    this.#services.delete(tenantId);
    this.#onTenantDeleted(tenantId);
  }

  // ---- services ----

  /**
   * Creates a service. Its row and audit row commit with the other changes
   * of this event-loop turn (group commit); the service is visible once
   * they have.
   */
  async createService(caller: Caller, ref: ServiceRef): Promise<ServiceRecord> {
    const principal = this.#audit.authorize(caller, "service.create", ref);
    validateServiceRef(ref);
    return this.#afterPendingChanges(ref, () => this.#createService(caller, principal.id, ref));
  }

  async #createService(caller: Caller, createdBy: string, ref: ServiceRef): Promise<ServiceRecord> {
    let created: LiveService | undefined;
    try {
      created = await this.#audit.auditedInGroup(
        caller,
        "service.create",
        ref.tenantId,
        serviceResource(ref),
        () => {
          created = this.#newService(createdBy, ref);
          this.#creating.set(ref.tenantId, (this.#creating.get(ref.tenantId) ?? 0) + 1);
          return created;
        },
        (service) => {
          // Cannot be taken: changes of one name wait for each other
          // (#afterPendingChanges) and the map mirrors the rows.
          if (!this.#store.insertService(service.record)) {
            throw new Error(`the store already has a service ${serviceResource(ref)}`);
          }
        },
      );
    } catch (error) {
      // The row and its audit row did not commit: the file made for it
      // belongs to no service.
      if (created !== undefined) this.#files.remove(created.record.serviceId);
      throw error;
    } finally {
      if (created !== undefined)
        this.#creating.set(ref.tenantId, (this.#creating.get(ref.tenantId) ?? 1) - 1);
    }
    // Its tenant may have been deleted while it waited for the commit (that
    // commits what is queued first, then removes the tenant's services).
    if (this.#files.get(created.record.serviceId) === created.file) this.#remember(created);
    return created.record;
  }

  /**
   * Checks that the service may be made and takes a file for it; the row
   * is written by the caller. File first, then the row: a crash in between
   * leaves an orphan file, which start-up removes; never a row without its
   * file. The file comes ready-made under a fresh id, which becomes the
   * service's id.
   */
  #newService(createdBy: string, ref: ServiceRef): LiveService {
    this.#tenant(ref.tenantId);
    const services = this.#services.get(ref.tenantId);
    if (services?.has(ref.serviceName) === true) {
      throw alreadyExists(`service ${ref.serviceName} in tenant ${ref.tenantId}`);
    }
    const count = (services?.size ?? 0) + (this.#creating.get(ref.tenantId) ?? 0);
    if (count >= this.#quotas.maxServices) {
      throw quotaReached(ref.tenantId, `${this.#quotas.maxServices} services`);
    }
    const file = withShmErrors(() => this.#files.claim());
    const record: ServiceRecord = {
      serviceId: file.serviceId,
      tenantId: ref.tenantId,
      serviceName: ref.serviceName,
      createdBy,
      createdAt: this.#now(),
    };
    return { record, file };
  }

  /**
   * Runs `change` once no other create or delete of the same service name
   * waits for its commit, so that each sees the one before it done.
   */
  async #afterPendingChanges<T>(ref: ServiceRef, change: () => Promise<T>): Promise<T> {
    const key = serviceResource(ref);
    for (let before = this.#committing.get(key); before !== undefined;) {
      await before.catch(() => undefined);
      before = this.#committing.get(key);
    }
    const done = change();
    this.#committing.set(key, done);
    try {
      return await done;
    } finally {
      if (this.#committing.get(key) === done) this.#committing.delete(key);
    }
  }

  getService(caller: Caller, ref: ServiceRef): ServiceRecord {
    this.#audit.authorize(caller, "service.read", ref);
    validateServiceRef(ref);
    return this.#service(ref).record;
  }

  /** Services of a tenant, as far as the caller's grants reach (service prefixes). */
  listServices(caller: Caller, tenantId: string, page: PageRequest): Page<ServiceRecord> {
    const principal = this.#audit.authorize(caller, "service.read", { tenantId });
    validateName("tenant", tenantId);
    this.#tenant(tenantId);
    const listed = this.#store.listServices(tenantId, pageToken(page), pageSize(page));
    const items = listed.items.filter((s) =>
      mayDoOnService(principal, "service.read", tenantId, s.serviceName),
    );
    return { ...listed, items };
  }

  /**
   * Deletes a service; its file is marked deleted (local mappers notice) and
   * unlinked. The row's removal commits with the other changes of this
   * event-loop turn (group commit).
   */
  async deleteService(caller: Caller, ref: ServiceRef): Promise<void> {
    this.#audit.authorize(caller, "service.delete", ref);
    validateServiceRef(ref);
    await this.#afterPendingChanges(ref, async () => {
      const service = await this.#audit.auditedInGroup(
        caller,
        "service.delete",
        ref.tenantId,
        serviceResource(ref),
        () => this.#service(ref),
        () => void this.#store.deleteService(ref.tenantId, ref.serviceName),
      );
      // Only once the row and the audit row are committed: row first, then
      // the file (a crash in between leaves an orphan file, removed at
      // start-up). Unless its tenant's deletion forgot it meanwhile.
      if (this.#servicesById.get(service.record.serviceId) === service)
        this.#forget(service.record);
    });
  }

  // ---- variables ----

  allocateVariable(
    caller: Caller,
    request: VariableRef & { initialData: Uint8Array; capacity?: number },
  ): VariableInfo {
    this.#audit.authorize(caller, "variable.write", request);
    validateVariableRef(request);
    if (request.capacity !== undefined && request.capacity < request.initialData.length) {
      throw invalidRequest("capacity is smaller than initial_data");
    }
    return this.#audit.audited(
      caller,
      "variable.create",
      request.tenantId,
      variableResource(request),
      () => {
        const { file } = this.#service(request);
        this.#checkVariableQuota(request.tenantId, file, request.variableName);
        return withShmErrors(() =>
          file.allocate(request.variableName, request.initialData, { capacity: request.capacity }),
        );
      },
    );
  }

  readVariable(caller: Caller, ref: VariableRef): { data: Buffer; version: number } {
    this.#audit.authorize(caller, "variable.read", ref);
    const { file } = this.#variableService(ref);
    const handle = file.find(ref.variableName);
    if (handle === undefined) throw notFound(`variable ${ref.variableName}`);
    return withShmErrors(() => file.read(handle));
  }

  /** Writes a value; waits (asynchronously) while a local process holds the variable. */
  async writeVariable(caller: Caller, request: WriteRequest): Promise<WriteResult> {
    this.#audit.authorize(caller, "variable.write", request);
    checkVersion("expected_version", request.expectedVersion);
    const { file, record } = this.#variableService(request);
    const handle = file.find(request.variableName);
    if (handle === undefined) {
      const created = this.#audit.audited(
        caller,
        "variable.create",
        request.tenantId,
        variableResource(request),
        () => this.#createOnWrite(file, request),
      );
      this.feed.publish(record.serviceId);
      return created;
    }
    const options =
      request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion };
    const version = await withShmErrorsWaitingForLocks(
      () => file.write(handle, request.data, options),
      request.signal,
    );
    this.feed.publish(record.serviceId);
    return { version, created: false };
  }

  async deallocateVariable(caller: Caller, ref: VariableRef, signal?: AbortSignal): Promise<void> {
    this.#audit.authorize(caller, "variable.write", ref);
    await this.#audit.auditedAsync(
      caller,
      "variable.delete",
      ref.tenantId,
      variableResource(ref),
      async () => {
        const { file, record } = this.#variableService(ref);
        await withShmErrorsWaitingForLocks(() => file.deallocate(ref.variableName), signal);
        this.feed.publish(record.serviceId);
      },
    );
  }

  /**
   * Checks that the caller may subscribe to a service (or one variable of
   * it) and that it exists; returns what a WatchSession needs to follow it.
   */
  openSubscription(
    caller: Caller,
    ref: ServiceRef & {
      variableName: string;
      fromVersion?: number;
      fromVersions?: Record<string, number>;
    },
  ): { serviceId: string; file: OwnedServiceFile } {
    this.#audit.authorize(caller, "variable.subscribe", ref);
    validateServiceRef(ref);
    checkVersion("from_version", ref.fromVersion);
    for (const version of Object.values(ref.fromVersions ?? {}))
      checkVersion("from_versions", version);
    if (ref.variableName !== "") validateName("variable", ref.variableName);
    const { file, record } = this.#service(ref);
    if (ref.variableName !== "" && file.find(ref.variableName) === undefined) {
      throw notFound(`variable ${ref.variableName}`);
    }
    return { serviceId: record.serviceId, file };
  }

  /**
   * The tenant and name of a service known by its id (the legacy protocol
   * names services so), or undefined. Not a permission check: the caller
   * still asks for the operation with the ref, which checks everything.
   */
  serviceRefById(serviceId: string): ServiceRef | undefined {
    const service = this.#servicesById.get(serviceId);
    return service === undefined
      ? undefined
      : { tenantId: service.record.tenantId, serviceName: service.record.serviceName };
  }

  /** Where a service's file is, for a local process that may read its variables. */
  serviceFile(caller: Caller, ref: ServiceRef): { serviceId: string; path: string; size: number } {
    this.#audit.authorize(caller, "variable.read", ref);
    validateServiceRef(ref);
    const { file, record } = this.#service(ref);
    // After the usual checks, so that a remote caller learns nothing it
    // could not learn by reading.
    if (!isOnServerMachine(caller)) {
      throw new CommyError(
        "PERMISSION_DENIED",
        "service files are only handed to clients on the server's machine",
      );
    }
    return { serviceId: record.serviceId, path: file.path, size: file.size };
  }

  /**
   * The path of a service's file when the caller is on the server's
   * machine and may read its variables, else undefined — quietly, without
   * an audit event: it decorates replies to local clients, it is not a
   * request of its own.
   */
  serviceFilePathIfReadable(caller: Caller, ref: ServiceRef): string | undefined {
    const principal = caller.principal;
    if (principal === undefined || !permits(principal, "variable.read", ref)) return undefined;
    if (!isOnServerMachine(caller)) return undefined;
    return this.#services.get(ref.tenantId)?.get(ref.serviceName)?.file.path;
  }

  listVariables(caller: Caller, ref: ServiceRef): VariableInfo[] {
    this.#audit.authorize(caller, "variable.read", ref);
    validateServiceRef(ref);
    const { file } = this.#service(ref);
    return withShmErrors(() => file.list());
  }

  /** Bytes of all service files the server maps (metrics). */
  mappedBytes(): number {
    let total = 0;
    for (const { file } of this.#servicesById.values()) total += file.size;
    return total;
  }

  /** False once closed (health probes ask). */
  get isOpen(): boolean {
    return !this.#closed;
  }

  /**
   * Closes every service file once their work in the background is done
   * (the store is closed by its owner); `isOpen` is false from the start.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.feed.close();
    this.#services.clear();
    this.#servicesById.clear();
    await this.#files.closeAll();
  }

  // ---- internals ----

  #authenticated(caller: Caller): Principal {
    if (caller.principal !== undefined) return caller.principal;
    return this.#audit.authorize(caller, "tenant.read", {});
  }

  #createOnWrite(file: OwnedServiceFile, request: WriteRequest): WriteResult {
    if (request.createIfMissing !== true) throw notFound(`variable ${request.variableName}`);
    if (request.expectedVersion !== undefined && request.expectedVersion !== 0) {
      throw new CommyError(
        "VERSION_CONFLICT",
        `variable ${request.variableName} does not exist (expected version ${request.expectedVersion})`,
      );
    }
    this.#checkVariableQuota(request.tenantId, file, request.variableName);
    withShmErrors(() => file.allocate(request.variableName, request.data));
    return { version: 1, created: true };
  }

  /** Before a new variable: the tenant's variable and byte quotas (an existing name fails later, as ALREADY_EXISTS). */
  #checkVariableQuota(tenantId: string, file: OwnedServiceFile, name: string): void {
    if (file.find(name) !== undefined) return;
    let variables = 0;
    let bytes = 0;
    for (const service of this.#services.get(tenantId)?.values() ?? []) {
      variables += service.file.variableCount;
      bytes += service.file.size;
    }
    if (variables >= this.#quotas.maxVariables) {
      throw quotaReached(tenantId, `${this.#quotas.maxVariables} variables`);
    }
    if (bytes >= this.#quotas.maxBytes) {
      throw quotaReached(tenantId, `${this.#quotas.maxBytes} bytes of service files`);
    }
  }

  #tenant(tenantId: string): TenantRecord {
    const tenant = this.#store.getTenant(tenantId);
    if (tenant === undefined) throw notFound(`tenant ${tenantId}`);
    return tenant;
  }

  #service(ref: ServiceRef): LiveService {
    const service = this.#services.get(ref.tenantId)?.get(ref.serviceName);
    if (service !== undefined) return service;
    this.#tenant(ref.tenantId);
    throw notFound(`service ${ref.serviceName} in tenant ${ref.tenantId}`);
  }

  #variableService(ref: VariableRef): LiveService {
    validateVariableRef(ref);
    return this.#service(ref);
  }

  #remember(service: LiveService): void {
    let byName = this.#services.get(service.record.tenantId);
    if (byName === undefined) {
      byName = new Map();
      this.#services.set(service.record.tenantId, byName);
    }
    byName.set(service.record.serviceName, service);
    this.#servicesById.set(service.record.serviceId, service);
  }

  #forget(record: ServiceRecord): void {
    this.#services.get(record.tenantId)?.delete(record.serviceName);
    this.#servicesById.delete(record.serviceId);
    this.feed.serviceDeleted(record.serviceId);
    this.#files.remove(record.serviceId);
  }
}

function validateName(kind: string, name: string): void {
  const problem = describeInvalidName(kind, name);
  if (problem !== undefined) throw invalidRequest(problem);
}

function validateServiceRef(ref: ServiceRef): void {
  validateName("tenant", ref.tenantId);
  validateName("service", ref.serviceName);
}

function validateVariableRef(ref: VariableRef): void {
  validateServiceRef(ref);
  validateName("variable", ref.variableName);
}

/** Versions are exact up to 2^53 (transports hand larger wire values over inexact). */
function checkVersion(field: string, version: number | undefined): void {
  if (version !== undefined && !(Number.isSafeInteger(version) && version >= 0)) {
    throw invalidRequest(`${field} is out of range`);
  }
}

function serviceResource(ref: ServiceRef): string {
  return `${ref.tenantId}/${ref.serviceName}`;
}

function variableResource(ref: VariableRef): string {
  return `${ref.tenantId}/${ref.serviceName}/${ref.variableName}`;
}

/** Page tokens are the last name of the previous page. */
function pageToken(page: PageRequest): string | undefined {
  if (page.pageToken === undefined || page.pageToken === "") return undefined;
  if (describeInvalidName("page", page.pageToken) !== undefined)
    throw invalidRequest("page_token is not valid");
  return page.pageToken;
}

function pageSize(page: PageRequest): number {
  const size = page.pageSize ?? 0;
  if (!Number.isInteger(size) || size < 0)
    throw invalidRequest("page_size must be a positive whole number");
  return size === 0 ? DEFAULT_PAGE_SIZE : Math.min(size, MAX_PAGE_SIZE);
}

function quotaReached(tenantId: string, what: string): CommyError {
  return new CommyError(
    "RESOURCE_EXHAUSTED",
    `tenant ${tenantId} has reached its quota of ${what}`,
  );
}
